//! The embedded store: SQLite in WAL mode with synchronous=FULL, so a version
//! is on disk when `append` returns. Records are kept as encoded c2wall.v1
//! entries; the coordinator holds the working set in memory and only loads it
//! here at start.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::AuditEvent;
use crate::error::CoordError;

mod guard;
mod log;

pub struct SqliteStore {
    db: Connection,
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
CREATE TABLE IF NOT EXISTS rollout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL            -- JSON: stage ceilings, soaks, a freeze
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

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

    /// A new store starts with the public resolvers protected.
    fn seed_protected(&mut self) -> Result<(), CoordError> {
        let seeded: Option<i64> = self
            .db
            .query_row(
                "SELECT value FROM meta WHERE name = 'protected_seeded'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if seeded.is_some() {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        for (p, why) in crate::guards::DEFAULT_PROTECTED {
            tx.execute(
                "INSERT OR IGNORE INTO protected (prefix, why) VALUES (?1, ?2)",
                params![p, why],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('protected_seeded', 1)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn insert_audit(db: &Connection, e: &AuditEvent) -> Result<(), CoordError> {
    db.execute(
        "INSERT INTO audit (at, actor, peer, action, detail, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![e.at, e.actor, e.peer, e.action, e.detail, e.reason],
    )?;
    Ok(())
}
