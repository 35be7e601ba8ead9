//! [`Store`] for PostgreSQL: records, versions and their log, agents, sightings.

use c2wall_model::Record;
use c2wall_proto::v1 as pb;
use prost::Message;

use super::{insert_audit, notify, PgStore, LOCK_VERSION};
use crate::error::CoordError;
use crate::store::codec::{change_log, decode, encode, record_key};
use crate::store::{AgentRow, AuditEvent, ChangeLog, Commit, RecordChange, Store, VersionInfo};

fn version_info(r: &postgres::Row) -> VersionInfo {
    VersionInfo {
        version: r.get::<_, i64>(0) as u64,
        digest: r.get(1),
        created_at: r.get(2),
        actor: r.get(3),
        reason: r.get(4),
        upserts: r.get::<_, i32>(5) as u32,
        removals: r.get::<_, i32>(6) as u32,
        records_digest: r.get(7),
    }
}

/// What `append` found when the version it was to write was taken.
enum Append {
    Done,
    Behind(u64),
}

impl Store for PgStore {
    fn reader(&self) -> Result<Box<dyn Store>, CoordError> {
        Ok(Box::new(self.again()?))
    }

    fn watch(&self) -> Result<Option<Box<dyn crate::store::Watch>>, CoordError> {
        Ok(Some(Box::new(super::PgWatch::new(self.again()?)?)))
    }

    fn lease(&self) -> Result<Option<Box<dyn crate::store::Lease>>, CoordError> {
        Ok(Some(Box::new(super::PgLease::new(self.again()?))))
    }

    fn lock_writes(&mut self) -> Result<Option<u64>, CoordError> {
        self.lock_writes_now().map(Some)
    }

    fn unlock_writes(&mut self) -> Result<(), CoordError> {
        self.unlock_writes_now()
    }

    fn latest_version(&self) -> Result<Option<u64>, CoordError> {
        self.latest_now().map(Some)
    }

    fn lineage(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), CoordError> {
        self.run(|db| {
            let r = db.query_one("SELECT lineage, moved FROM lineage WHERE id = 1", &[])?;
            Ok((r.get(0), r.get(1)))
        })
    }

    fn set_lineage(
        &mut self,
        lineage: &[u8],
        moved: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), CoordError> {
        self.run(|db| {
            let mut tx = db.transaction()?;
            tx.execute(
                "UPDATE lineage SET lineage = $1, moved = $2 WHERE id = 1",
                &[&lineage, &moved],
            )?;
            insert_audit(&mut tx, audit)?;
            notify(&mut tx, "lineage")?;
            tx.commit()
        })
    }

    fn load(&mut self) -> Result<(Vec<Record>, Option<VersionInfo>), CoordError> {
        // One snapshot of the database: the records and the version they are at.
        let (rows, latest) = self.run(|db| {
            let mut tx = db
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let rows: Vec<Vec<u8>> = tx
                .query("SELECT entry FROM records", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let latest = tx
                .query_opt(
                    "SELECT version, digest, created_at, actor, reason, upserts, removals,
                            records_digest
                     FROM versions ORDER BY version DESC LIMIT 1",
                    &[],
                )?
                .map(|r| version_info(&r));
            tx.commit()?;
            Ok((rows, latest))
        })?;
        let records = rows
            .iter()
            .map(|b| decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, latest))
    }

    fn append(&mut self, c: &Commit) -> Result<(), CoordError> {
        let done = self.run(|db| {
            let mut tx = db.transaction()?;
            // Replicas write versions one at a time; the lock is released at
            // commit or rollback.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_VERSION])?;
            let latest: i64 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM versions", &[])?
                .get(0);
            if latest as u64 + 1 != c.info.version {
                return Ok(Append::Behind(latest as u64));
            }
            let put = tx.prepare(
                "INSERT INTO records (key, entry) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET entry = excluded.entry",
            )?;
            let del = tx.prepare("DELETE FROM records WHERE key = $1")?;
            let change = tx.prepare(
                "INSERT INTO changes (version, seq, before, after) VALUES ($1, $2, $3, $4)",
            )?;
            let v = c.info.version as i64;
            for (seq, ch) in c.changes.iter().enumerate() {
                let (before, after) = match ch {
                    RecordChange::Put { before, after } => (before.as_ref(), Some(after)),
                    RecordChange::Delete { before } => (Some(before), None),
                };
                match after {
                    Some(a) => tx.execute(&put, &[&record_key(a), &encode(a)])?,
                    None => {
                        tx.execute(&del, &[&record_key(before.expect("delete has a before"))])?
                    }
                };
                tx.execute(
                    &change,
                    &[&v, &(seq as i32), &before.map(encode), &after.map(encode)],
                )?;
            }
            insert_audit(&mut tx, &c.audit)?;
            let i = &c.info;
            tx.execute(
                "INSERT INTO versions (version, digest, created_at, actor, reason, upserts,
                     removals, records_digest)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &v,
                    &i.digest,
                    &i.created_at,
                    &i.actor,
                    &i.reason,
                    &(i.upserts as i32),
                    &(i.removals as i32),
                    &i.records_digest,
                ],
            )?;
            tx.execute(
                "INSERT INTO deltas (version, delta) VALUES ($1, $2)",
                &[&v, &c.delta],
            )?;
            notify(&mut tx, "version")?;
            tx.commit()?;
            Ok(Append::Done)
        })?;
        match done {
            Append::Done => Ok(()),
            Append::Behind(latest) => Err(CoordError::Behind { latest }),
        }
    }

    fn deltas_after(&self, version: u64) -> Result<Option<Vec<Vec<u8>>>, CoordError> {
        self.deltas_after_mut(version)
    }

    fn changes_after(&self, version: u64) -> Result<Option<ChangeLog>, CoordError> {
        self.changes_after_mut(version)
    }

    fn history(&self, before: u64, limit: u32) -> Result<Vec<VersionInfo>, CoordError> {
        self.history_mut(before, limit)
    }

    fn compact(&mut self, keep_from: u64) -> Result<(), CoordError> {
        let k = keep_from as i64;
        self.run(|db| {
            let mut tx = db.transaction()?;
            tx.execute("DELETE FROM deltas WHERE version < $1", &[&k])?;
            tx.execute("DELETE FROM changes WHERE version < $1", &[&k])?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('log_start', $1)
                 ON CONFLICT (name) DO UPDATE SET value = greatest(meta.value, excluded.value)",
                &[&k],
            )?;
            tx.commit()
        })
    }

    fn log_start(&self) -> Result<u64, CoordError> {
        self.log_start_mut()
    }

    fn put_agent(&mut self, row: &AgentRow) -> Result<(), CoordError> {
        self.run(|db| {
            db.execute(
                "INSERT INTO agents (agent_id, status, last_seen) VALUES ($1, $2, $3)
                 ON CONFLICT (agent_id) DO UPDATE
                 SET status = excluded.status, last_seen = excluded.last_seen",
                &[&row.agent_id, &row.status, &row.last_seen],
            )
            .map(|_| ())
        })
    }

    fn add_sightings(
        &mut self,
        agent_id: &str,
        sightings: &[pb::Sighting],
    ) -> Result<(), CoordError> {
        self.run(|db| {
            let mut tx = db.transaction()?;
            let st = tx.prepare(
                "INSERT INTO sightings (agent_id, subscriber, entry, ip_protocol, cc_port,
                     direction, dropped, first_seen, last_seen, count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped)
                 DO UPDATE SET first_seen = least(sightings.first_seen, excluded.first_seen),
                               last_seen = greatest(sightings.last_seen, excluded.last_seen),
                               count = sightings.count + excluded.count",
            )?;
            for s in sightings {
                tx.execute(
                    &st,
                    &[
                        &agent_id,
                        &s.subscriber,
                        &s.entry.clone().unwrap_or_default().encode_to_vec(),
                        &(s.ip_protocol as i32),
                        &(s.cc_port as i32),
                        &s.direction,
                        &s.dropped,
                        &s.first_seen,
                        &s.last_seen,
                        &(s.count as i64),
                    ],
                )?;
            }
            tx.commit()
        })
    }

    fn sightings(
        &self,
        since: i64,
        keep: &dyn Fn(&pb::Sighting) -> bool,
        limit: usize,
    ) -> Result<Vec<(String, pb::Sighting)>, CoordError> {
        let rows = self.run(|db| {
            db.query(
                "SELECT agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped,
                        first_seen, last_seen, count
                 FROM sightings WHERE last_seen >= $1 ORDER BY last_seen DESC",
                &[&since],
            )
        })?;
        let mut out = Vec::new();
        for r in rows {
            let entry: Vec<u8> = r.get(2);
            let s = pb::Sighting {
                subscriber: r.get(1),
                entry: pb::EntryKey::decode(entry.as_slice()).ok(),
                ip_protocol: r.get::<_, i32>(3) as u32,
                cc_port: r.get::<_, i32>(4) as u32,
                direction: r.get(5),
                dropped: r.get(6),
                first_seen: r.get(7),
                last_seen: r.get(8),
                count: r.get::<_, i64>(9) as u64,
            };
            if keep(&s) {
                out.push((r.get(0), s));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn agents(&self) -> Result<Vec<AgentRow>, CoordError> {
        let rows = self.run(|db| {
            db.query(
                "SELECT agent_id, status, last_seen FROM agents ORDER BY agent_id",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| AgentRow {
                agent_id: r.get(0),
                status: r.get(1),
                last_seen: r.get(2),
            })
            .collect())
    }
}

impl PgStore {
    fn log_start_mut(&self) -> Result<u64, CoordError> {
        let v: Option<i64> = self.run(|db| {
            Ok(db
                .query_opt("SELECT value FROM meta WHERE name = 'log_start'", &[])?
                .map(|r| r.get(0)))
        })?;
        Ok(v.unwrap_or(1).max(1) as u64)
    }

    fn deltas_after_mut(&self, version: u64) -> Result<Option<Vec<Vec<u8>>>, CoordError> {
        if version + 1 < self.log_start_mut()? {
            return Ok(None);
        }
        let v = version as i64;
        let rows = self.run(|db| {
            db.query(
                "SELECT delta FROM deltas WHERE version > $1 ORDER BY version",
                &[&v],
            )
        })?;
        Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
    }

    fn changes_after_mut(&self, version: u64) -> Result<Option<ChangeLog>, CoordError> {
        if version + 1 < self.log_start_mut()? {
            return Ok(None);
        }
        let v = version as i64;
        let rows = self.run(|db| {
            db.query(
                "SELECT version, before, after FROM changes WHERE version > $1
                 ORDER BY version DESC, seq",
                &[&v],
            )
        })?;
        let rows = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2)));
        Ok(Some(change_log(rows)?))
    }

    fn history_mut(&self, before: u64, limit: u32) -> Result<Vec<VersionInfo>, CoordError> {
        let before = if before == 0 { i64::MAX } else { before as i64 };
        let limit = limit as i64;
        let rows = self.run(|db| {
            db.query(
                "SELECT version, digest, created_at, actor, reason, upserts, removals,
                        records_digest
                 FROM versions WHERE version < $1 ORDER BY version DESC LIMIT $2",
                &[&before, &limit],
            )
        })?;
        Ok(rows.iter().map(version_info).collect())
    }
}
