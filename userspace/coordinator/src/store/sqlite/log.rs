//! [`Store`] for SQLite: records, versions and their log, agents, sightings.

use c2wall_model::Record;
use c2wall_proto::v1 as pb;
use prost::Message;
use rusqlite::{params, OptionalExtension};

use super::{insert_audit, SqliteStore};
use crate::error::CoordError;
use crate::store::codec::{change_log, decode, encode, record_key};
use crate::store::{AgentRow, Commit, RecordChange, Store, VersionInfo};

impl Store for SqliteStore {
    fn reader(&self) -> Result<Box<dyn Store>, CoordError> {
        Ok(Box::new(SqliteStore::open(&self.path)?))
    }

    fn lineage(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), CoordError> {
        Ok(self
            .db
            .query_row("SELECT lineage, moved FROM lineage WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
    }

    fn set_lineage(
        &mut self,
        lineage: &[u8],
        moved: &[u8],
        audit: &super::AuditEvent,
    ) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "UPDATE lineage SET lineage = ?1, moved = ?2 WHERE id = 1",
            params![lineage, moved],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn load(&mut self) -> Result<(Vec<Record>, Option<VersionInfo>), CoordError> {
        let mut st = self.db.prepare("SELECT entry FROM records")?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut records = Vec::new();
        for b in rows {
            records.push(decode(&b?)?);
        }
        let latest = self.history(0, 1)?.into_iter().next();
        Ok((records, latest))
    }

    fn append(&mut self, c: &Commit) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        // Versions follow each other with no gap, whoever writes them.
        let latest: i64 =
            tx.query_row("SELECT coalesce(max(version), 0) FROM versions", [], |r| {
                r.get(0)
            })?;
        if latest as u64 + 1 != c.info.version {
            return Err(CoordError::Behind {
                latest: latest as u64,
            });
        }
        for (seq, ch) in c.changes.iter().enumerate() {
            let (before, after) = match ch {
                RecordChange::Put { before, after } => (before.as_ref(), Some(after)),
                RecordChange::Delete { before } => (Some(before), None),
            };
            match after {
                Some(a) => tx.execute(
                    "INSERT OR REPLACE INTO records (key, entry) VALUES (?1, ?2)",
                    params![record_key(a), encode(a)],
                )?,
                None => tx.execute(
                    "DELETE FROM records WHERE key = ?1",
                    params![record_key(before.expect("delete has a before"))],
                )?,
            };
            tx.execute(
                "INSERT INTO changes (version, seq, before, after) VALUES (?1, ?2, ?3, ?4)",
                params![
                    c.info.version as i64,
                    seq as i64,
                    before.map(encode),
                    after.map(encode)
                ],
            )?;
        }
        insert_audit(&tx, &c.audit)?;
        let i = &c.info;
        tx.execute(
            "INSERT INTO versions (version, digest, created_at, actor, reason, upserts, removals,
                 records_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i.version as i64,
                i.digest,
                i.created_at,
                i.actor,
                i.reason,
                i.upserts,
                i.removals,
                i.records_digest
            ],
        )?;
        tx.execute(
            "INSERT INTO deltas (version, delta) VALUES (?1, ?2)",
            params![i.version as i64, c.delta],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn deltas_after(&self, version: u64) -> Result<Option<Vec<Vec<u8>>>, CoordError> {
        if version + 1 < self.log_start()? {
            return Ok(None);
        }
        let mut st = self
            .db
            .prepare("SELECT delta FROM deltas WHERE version > ?1 ORDER BY version")?;
        let rows = st.query_map([version as i64], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(Some(rows.collect::<Result<_, _>>()?))
    }

    fn changes_after(
        &self,
        version: u64,
    ) -> Result<Option<Vec<(u64, Vec<RecordChange>)>>, CoordError> {
        if version + 1 < self.log_start()? {
            return Ok(None);
        }
        let mut st = self.db.prepare(
            "SELECT version, before, after FROM changes WHERE version > ?1 ORDER BY version DESC, seq",
        )?;
        let rows = st.query_map([version as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        Ok(Some(change_log(rows)?))
    }

    fn history(&self, before: u64, limit: u32) -> Result<Vec<VersionInfo>, CoordError> {
        let before = if before == 0 { i64::MAX } else { before as i64 };
        let mut st = self.db.prepare(
            "SELECT version, digest, created_at, actor, reason, upserts, removals, records_digest
             FROM versions
             WHERE version < ?1 ORDER BY version DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![before, limit], |r| {
            Ok(VersionInfo {
                version: r.get::<_, i64>(0)? as u64,
                digest: r.get(1)?,
                created_at: r.get(2)?,
                actor: r.get(3)?,
                reason: r.get(4)?,
                upserts: r.get(5)?,
                removals: r.get(6)?,
                records_digest: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn compact(&mut self, keep_from: u64) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM deltas WHERE version < ?1", [keep_from as i64])?;
        tx.execute("DELETE FROM changes WHERE version < ?1", [keep_from as i64])?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('log_start', ?1)
             ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
            [keep_from as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn log_start(&self) -> Result<u64, CoordError> {
        let v: Option<i64> = self
            .db
            .query_row("SELECT value FROM meta WHERE name = 'log_start'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.unwrap_or(1).max(1) as u64)
    }

    fn put_agent(&mut self, row: &AgentRow) -> Result<(), CoordError> {
        self.db.execute(
            "INSERT OR REPLACE INTO agents (agent_id, status, last_seen) VALUES (?1, ?2, ?3)",
            params![row.agent_id, row.status, row.last_seen],
        )?;
        Ok(())
    }

    fn add_sightings(
        &mut self,
        agent_id: &str,
        sightings: &[pb::Sighting],
    ) -> Result<(), CoordError> {
        let tx = self.db.transaction()?;
        {
            let mut st = tx.prepare(
                "INSERT INTO sightings (agent_id, subscriber, entry, ip_protocol, cc_port, direction,
                     dropped, first_seen, last_seen, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped)
                 DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
                               last_seen = max(last_seen, excluded.last_seen),
                               count = count + excluded.count",
            )?;
            for s in sightings {
                st.execute(rusqlite::params![
                    agent_id,
                    s.subscriber,
                    s.entry.clone().unwrap_or_default().encode_to_vec(),
                    s.ip_protocol,
                    s.cc_port,
                    s.direction,
                    s.dropped,
                    s.first_seen,
                    s.last_seen,
                    s.count as i64,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn sightings(
        &self,
        since: i64,
        keep: &dyn Fn(&pb::Sighting) -> bool,
        limit: usize,
    ) -> Result<Vec<(String, pb::Sighting)>, CoordError> {
        let mut st = self.db.prepare(
            "SELECT agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped,
                    first_seen, last_seen, count
             FROM sightings WHERE last_seen >= ?1 ORDER BY last_seen DESC",
        )?;
        let mut rows = st.query([since])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let entry: Vec<u8> = r.get(2)?;
            let s = pb::Sighting {
                subscriber: r.get(1)?,
                entry: pb::EntryKey::decode(entry.as_slice()).ok(),
                ip_protocol: r.get(3)?,
                cc_port: r.get(4)?,
                direction: r.get(5)?,
                dropped: r.get(6)?,
                first_seen: r.get(7)?,
                last_seen: r.get(8)?,
                count: r.get::<_, i64>(9)? as u64,
            };
            if keep(&s) {
                out.push((r.get(0)?, s));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn agents(&self) -> Result<Vec<AgentRow>, CoordError> {
        let mut st = self
            .db
            .prepare("SELECT agent_id, status, last_seen FROM agents ORDER BY agent_id")?;
        let rows = st.query_map([], |r| {
            Ok(AgentRow {
                agent_id: r.get(0)?,
                status: r.get(1)?,
                last_seen: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
