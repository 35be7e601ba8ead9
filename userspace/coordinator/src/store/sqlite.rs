//! The embedded store: SQLite in WAL mode with synchronous=FULL, so a version
//! is on disk when `append` returns. Records are kept as encoded c2wall.v1
//! entries; the coordinator holds the working set in memory and only loads it
//! here at start.

use std::path::Path;

use c2wall_model::Record;
use c2wall_proto::v1 as pb;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use super::{AgentRow, ChangeLog, Commit, RecordChange, Store, VersionInfo};
use crate::error::CoordError;

pub struct SqliteStore {
    pub(super) db: Connection,
    path: std::path::PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY,          -- identity and source
    entry BLOB NOT NULL            -- c2wall.v1.Entry
);
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY,
    digest BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    upserts INTEGER NOT NULL,
    removals INTEGER NOT NULL,
    records_digest BLOB            -- every stored record after it (NULL: older)
);
CREATE TABLE IF NOT EXISTS deltas (
    version INTEGER PRIMARY KEY,
    delta BLOB NOT NULL            -- c2wall.v1.Delta, as sent to agents
);
CREATE TABLE IF NOT EXISTS changes (
    version INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    before BLOB,                   -- c2wall.v1.Entry or NULL
    after BLOB,                    -- c2wall.v1.Entry or NULL (deleted)
    PRIMARY KEY (version, seq)
);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    status BLOB NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sightings (
    agent_id TEXT NOT NULL,
    subscriber TEXT NOT NULL,      -- pseudonym or address, as the agent sent it
    entry BLOB NOT NULL,           -- c2wall.v1.EntryKey
    ip_protocol INTEGER NOT NULL,
    cc_port INTEGER NOT NULL,
    direction INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped)
);
CREATE INDEX IF NOT EXISTS sightings_last_seen ON sightings (last_seen);
CREATE TABLE IF NOT EXISTS protected (
    prefix TEXT PRIMARY KEY,
    why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    peer TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    reason TEXT NOT NULL
);
-- Never rewritten: the store itself refuses.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL,
    request BLOB NOT NULL,
    summary TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS modes (
    scope TEXT PRIMARY KEY,        -- '*' = the fleet, else an agent id
    mode TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lineage (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lineage BLOB NOT NULL,         -- random, made with the store
    moved BLOB                     -- c2wall.v1.LineageMove or NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

fn record_key(r: &Record) -> String {
    format!("{}|{}", r.identity(), r.source)
}

fn encode(r: &Record) -> Vec<u8> {
    pb::Entry::from(r).encode_to_vec()
}

fn decode(b: &[u8]) -> Result<Record, CoordError> {
    let e = pb::Entry::decode(b).map_err(|e| CoordError::Corrupt(e.to_string()))?;
    Record::try_from(&e).map_err(|e| CoordError::Corrupt(e.to_string()))
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, CoordError> {
        let open_err = |message: String| CoordError::StoreOpen {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
            }
        }
        let db = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        // Stores made before the records digest was kept gain its column.
        let has: bool = db
            .prepare("SELECT 1 FROM pragma_table_info('versions') WHERE name = 'records_digest'")?
            .exists([])?;
        if !has {
            db.execute("ALTER TABLE versions ADD COLUMN records_digest BLOB", [])?;
        }
        // A new store (or one from before lineages) gets its own.
        db.execute(
            "INSERT OR IGNORE INTO lineage (id, lineage) VALUES (1, ?1)",
            [c2wall_model::sign::random32()[..16].to_vec()],
        )?;
        let mut store = SqliteStore {
            db,
            path: path.to_path_buf(),
        };
        store.seed_protected()?;
        Ok(store)
    }
}

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
        super::sqlite_guard::insert_audit(&tx, audit)?;
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
        super::sqlite_guard::insert_audit(&tx, &c.audit)?;
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
        let mut out: ChangeLog = Vec::new();
        for row in rows {
            let (v, before, after) = row?;
            let before = before.map(|b| decode(&b)).transpose()?;
            let ch = match after {
                Some(a) => RecordChange::Put {
                    before,
                    after: decode(&a)?,
                },
                None => RecordChange::Delete {
                    before: before
                        .ok_or_else(|| CoordError::Corrupt("delete without before".into()))?,
                },
            };
            match out.last_mut() {
                Some((lv, list)) if *lv == v as u64 => list.push(ch),
                _ => out.push((v as u64, vec![ch])),
            }
        }
        Ok(Some(out))
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
