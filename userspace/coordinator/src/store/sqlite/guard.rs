//! [`GuardStore`] for SQLite: protected prefixes, the audit log, held changes.

use rusqlite::params;

use super::{insert_audit, SqliteStore};
use crate::error::CoordError;
use crate::store::codec::{scope_key, scope_of};
use crate::store::{AuditEvent, GuardStore, PendingChange};
use c2wall_model::{HeldKind, HeldState, Mode, Modes, Scope};

/// The two-column tables keyed by name: `protected (prefix, why)` and
/// `modes (scope, mode)`.
#[derive(Clone, Copy)]
struct Pairs {
    table: &'static str,
    key: &'static str,
    value: &'static str,
}

const PROTECTED: Pairs = Pairs {
    table: "protected",
    key: "prefix",
    value: "why",
};
const MODES: Pairs = Pairs {
    table: "modes",
    key: "scope",
    value: "mode",
};

impl SqliteStore {
    fn pairs(&self, t: Pairs) -> Result<Vec<(String, String)>, CoordError> {
        let mut st = self.db.prepare(&format!(
            "SELECT {}, {} FROM {} ORDER BY {}",
            t.key, t.value, t.table, t.key
        ))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets (Some) or removes (None) one row, with its audit record, in one
    /// transaction.
    fn set_pair(
        &mut self,
        t: Pairs,
        key: &str,
        value: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        match value {
            Some(v) => tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {} ({}, {}) VALUES (?1, ?2)",
                    t.table, t.key, t.value
                ),
                params![key, v],
            )?,
            None => tx.execute(
                &format!("DELETE FROM {} WHERE {} = ?1", t.table, t.key),
                params![key],
            )?,
        };
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }
}

impl GuardStore for SqliteStore {
    fn protected(&self) -> Result<Vec<(String, String)>, CoordError> {
        self.pairs(PROTECTED)
    }

    fn set_protected(
        &mut self,
        prefix: &str,
        why: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        self.set_pair(PROTECTED, prefix, why, audit)
    }

    fn audit(&mut self, e: &AuditEvent) -> Result<(), CoordError> {
        insert_audit(&self.db, e)
    }

    fn audit_log(&self, before: u64, limit: u32) -> Result<Vec<AuditEvent>, CoordError> {
        let before = if before == 0 { i64::MAX } else { before as i64 };
        let mut st = self.db.prepare(
            "SELECT seq, at, actor, peer, action, detail, reason FROM audit
             WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![before, limit], |r| {
            Ok(AuditEvent {
                seq: r.get::<_, i64>(0)? as u64,
                at: r.get(1)?,
                actor: r.get(2)?,
                peer: r.get(3)?,
                action: r.get(4)?,
                detail: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn hold(&mut self, p: &PendingChange, audit: &AuditEvent) -> Result<u64, CoordError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO pending (created_at, actor, reason, kind, request, summary, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open')",
            params![
                p.created_at,
                p.actor,
                p.reason,
                p.kind.as_str(),
                p.request,
                p.summary
            ],
        )?;
        let id = tx.last_insert_rowid() as u64;
        let mut a = audit.clone();
        a.detail = format!("pending #{id}: {}", a.detail);
        insert_audit(&tx, &a)?;
        tx.commit()?;
        Ok(id)
    }

    fn pending(&self, id: Option<u64>) -> Result<Vec<PendingChange>, CoordError> {
        let (sql, arg) = match id {
            Some(id) => (
                "SELECT id, created_at, actor, reason, kind, request, summary, state FROM pending WHERE id = ?1",
                id as i64,
            ),
            None => (
                "SELECT id, created_at, actor, reason, kind, request, summary, state FROM pending
                 WHERE state = 'open' AND id > ?1 ORDER BY id",
                0,
            ),
        };
        let mut st = self.db.prepare(sql)?;
        let rows = st.query_map([arg], |r| {
            Ok(PendingChange {
                id: r.get::<_, i64>(0)? as u64,
                created_at: r.get(1)?,
                actor: r.get(2)?,
                reason: r.get(3)?,
                kind: text(4, r.get::<_, String>(4)?, HeldKind::parse)?,
                request: r.get(5)?,
                summary: r.get(6)?,
                state: text(7, r.get::<_, String>(7)?, HeldState::parse)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn close_pending(
        &mut self,
        id: u64,
        state: HeldState,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        let n = tx.execute(
            "UPDATE pending SET state = ?2 WHERE id = ?1 AND state = 'open'",
            params![id as i64, state.as_str()],
        )?;
        if n == 0 {
            return Err(CoordError::NotFound(format!(
                "pending change #{id} is not open"
            )));
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn modes(&self) -> Result<Modes, CoordError> {
        let rows = self.pairs(MODES)?.into_iter().map(|(scope, mode)| {
            let m = Mode::parse(&mode)
                .ok_or_else(|| CoordError::Corrupt(format!("modes: `{mode}` for {scope}")))?;
            Ok((scope_of(scope), m))
        });
        Ok(Modes::from_overrides(
            rows.collect::<Result<Vec<_>, CoordError>>()?,
        ))
    }

    fn set_mode(
        &mut self,
        scope: &Scope,
        mode: Option<Mode>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        let key = scope_key(scope);
        self.set_pair(MODES, key, mode.map(Mode::as_str), audit)
    }

    fn rollout(&self) -> Result<Option<String>, CoordError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .db
            .query_row("SELECT state FROM rollout WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    fn set_rollout(&mut self, state: &str, audit: Option<&AuditEvent>) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO rollout (id, state) VALUES (1, ?1)",
            params![state],
        )?;
        if let Some(a) = audit {
            insert_audit(&tx, a)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A stored enum column, refused as a conversion failure when unknown.
fn text<T>(col: usize, s: String, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            format!("unknown value `{s}`").into(),
        )
    })
}
