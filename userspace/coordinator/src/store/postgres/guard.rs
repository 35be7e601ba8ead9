//! [`GuardStore`] for PostgreSQL: protected prefixes, the audit log (the
//! database refuses to rewrite it: see the migration's triggers), held
//! changes, kill-switch overrides.

use c2wall_model::{HeldKind, HeldState, Mode, Modes, Scope};

use super::{insert_audit, notify, PgStore};
use crate::error::CoordError;
use crate::store::codec::{scope_key, scope_of};
use crate::store::{AuditEvent, GuardStore, PendingChange};

fn corrupt(table: &str, value: &str) -> CoordError {
    CoordError::Corrupt(format!("{table}: unknown value `{value}`"))
}

impl GuardStore for PgStore {
    fn protected(&self) -> Result<Vec<(String, String)>, CoordError> {
        let rows =
            self.run(|db| db.query("SELECT prefix, why FROM protected ORDER BY prefix", &[]))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn set_protected(
        &mut self,
        prefix: &str,
        why: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        self.run(|db| {
            let mut tx = db.transaction()?;
            match why {
                Some(w) => tx.execute(
                    "INSERT INTO protected (prefix, why) VALUES ($1, $2)
                     ON CONFLICT (prefix) DO UPDATE SET why = excluded.why",
                    &[&prefix, &w],
                )?,
                None => tx.execute("DELETE FROM protected WHERE prefix = $1", &[&prefix])?,
            };
            insert_audit(&mut tx, audit)?;
            notify(&mut tx, "protected")?;
            tx.commit()
        })
    }

    fn audit(&mut self, e: &AuditEvent) -> Result<(), CoordError> {
        self.run(|db| insert_audit(db, e))
    }

    fn audit_log(&self, before: u64, limit: u32) -> Result<Vec<AuditEvent>, CoordError> {
        let before = if before == 0 { i64::MAX } else { before as i64 };
        let limit = limit as i64;
        let rows = self.run(|db| {
            db.query(
                "SELECT seq, at, actor, peer, action, detail, reason FROM audit
                 WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                &[&before, &limit],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| AuditEvent {
                seq: r.get::<_, i64>(0) as u64,
                at: r.get(1),
                actor: r.get(2),
                peer: r.get(3),
                action: r.get(4),
                detail: r.get(5),
                reason: r.get(6),
            })
            .collect())
    }

    fn hold(&mut self, p: &PendingChange, audit: &AuditEvent) -> Result<u64, CoordError> {
        self.run(|db| {
            let mut tx = db.transaction()?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO pending (created_at, actor, reason, kind, request, summary, state)
                     VALUES ($1, $2, $3, $4, $5, $6, 'open') RETURNING id",
                    &[
                        &p.created_at,
                        &p.actor,
                        &p.reason,
                        &p.kind.as_str(),
                        &p.request,
                        &p.summary,
                    ],
                )?
                .get(0);
            let mut a = audit.clone();
            a.detail = format!("pending #{id}: {}", a.detail);
            insert_audit(&mut tx, &a)?;
            tx.commit()?;
            Ok(id as u64)
        })
    }

    fn pending(&self, id: Option<u64>) -> Result<Vec<PendingChange>, CoordError> {
        let rows = self.run(|db| match id {
            Some(id) => db.query(
                "SELECT id, created_at, actor, reason, kind, request, summary, state
                 FROM pending WHERE id = $1",
                &[&(id as i64)],
            ),
            None => db.query(
                "SELECT id, created_at, actor, reason, kind, request, summary, state
                 FROM pending WHERE state = 'open' ORDER BY id",
                &[],
            ),
        })?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(4);
                let state: String = r.get(7);
                Ok(PendingChange {
                    id: r.get::<_, i64>(0) as u64,
                    created_at: r.get(1),
                    actor: r.get(2),
                    reason: r.get(3),
                    kind: HeldKind::parse(&kind).ok_or_else(|| corrupt("pending.kind", &kind))?,
                    request: r.get(5),
                    summary: r.get(6),
                    state: HeldState::parse(&state)
                        .ok_or_else(|| corrupt("pending.state", &state))?,
                })
            })
            .collect()
    }

    fn close_pending(
        &mut self,
        id: u64,
        state: HeldState,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        let closed = self.run(|db| {
            let mut tx = db.transaction()?;
            let n = tx.execute(
                "UPDATE pending SET state = $2 WHERE id = $1 AND state = 'open'",
                &[&(id as i64), &state.as_str()],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(&mut tx, audit)?;
            tx.commit()?;
            Ok(true)
        })?;
        if !closed {
            return Err(CoordError::NotFound(format!(
                "pending change #{id} is not open"
            )));
        }
        Ok(())
    }

    fn modes(&self) -> Result<Modes, CoordError> {
        let rows = self.run(|db| db.query("SELECT scope, mode FROM modes ORDER BY scope", &[]))?;
        let overrides = rows
            .iter()
            .map(|r| {
                let mode: String = r.get(1);
                let m = Mode::parse(&mode).ok_or_else(|| corrupt("modes.mode", &mode))?;
                Ok((scope_of(r.get(0)), m))
            })
            .collect::<Result<Vec<_>, CoordError>>()?;
        Ok(Modes::from_overrides(overrides))
    }

    fn set_mode(
        &mut self,
        scope: &Scope,
        mode: Option<Mode>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        let key = scope_key(scope);
        self.run(|db| {
            let mut tx = db.transaction()?;
            match mode {
                Some(m) => tx.execute(
                    "INSERT INTO modes (scope, mode) VALUES ($1, $2)
                     ON CONFLICT (scope) DO UPDATE SET mode = excluded.mode",
                    &[&key, &m.as_str()],
                )?,
                None => tx.execute("DELETE FROM modes WHERE scope = $1", &[&key])?,
            };
            insert_audit(&mut tx, audit)?;
            notify(&mut tx, "modes")?;
            tx.commit()
        })
    }

    fn rollout(&self) -> Result<Option<String>, CoordError> {
        let row = self.run(|db| db.query_opt("SELECT state FROM rollout WHERE id = 1", &[]))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn set_rollout(&mut self, state: &str, audit: Option<&AuditEvent>) -> Result<(), CoordError> {
        self.run(|db| {
            let mut tx = db.transaction()?;
            tx.execute(
                "INSERT INTO rollout (id, state) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                &[&state],
            )?;
            if let Some(a) = audit {
                insert_audit(&mut tx, a)?;
            }
            notify(&mut tx, "rollout")?;
            tx.commit()
        })
    }
}
