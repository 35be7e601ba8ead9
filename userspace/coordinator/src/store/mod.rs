//! Persistence behind a narrow interface: the coordinator's logic lives in
//! memory (crate::state) and hands the store one finished version at a time.
//! SQLite is the embedded default; a PostgreSQL store implements the same trait.

mod codec;
pub mod postgres;
pub mod sqlite;

/// Where the store is: `--store` and `store =` / `[store] url =` in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (a path, or `sqlite:PATH`): one coordinator.
    Sqlite(std::path::PathBuf),
    /// `postgres://USER@HOST/DB` (or `?host=/socket/dir`): replicas.
    Postgres(String),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        if postgres::is_url(s) {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(s.strip_prefix("sqlite:").unwrap_or(s).into())
        }
    }

    /// Where this coordinator keeps local files (an upstream's saved set):
    /// beside a SQLite store, /var/lib/c2wall with PostgreSQL.
    pub fn local_dir(&self) -> std::path::PathBuf {
        match self {
            Location::Sqlite(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Into::into)
                .unwrap_or_else(|| ".".into()),
            Location::Postgres(_) => "/var/lib/c2wall".into(),
        }
    }

    /// Opens the store (a PostgreSQL database gets its schema migrations).
    pub fn open(&self) -> Result<Box<dyn Store>, CoordError> {
        Ok(match self {
            Location::Sqlite(p) => Box::new(sqlite::SqliteStore::open(p)?),
            Location::Postgres(url) => Box::new(postgres::PgStore::open(url)?),
        })
    }

    /// For logs: the file, or the database without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => postgres::redact(url),
        }
    }
}

use c2wall_model::{HeldKind, HeldState, Mode, Modes, Record, Scope};

use crate::error::CoordError;

/// One version as the history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    /// c2wall_model::SetDigest bytes of the effective set after this version.
    pub digest: Vec<u8>,
    pub created_at: i64,
    pub actor: String,
    pub reason: String,
    pub upserts: u32,
    pub removals: u32,
    /// Digest of every stored record after this version (see
    /// `State::records_digest`); None for versions made before it was kept.
    pub records_digest: Option<Vec<u8>>,
}

/// A record-level change, with what it replaced (for rollback).
#[derive(Clone, Debug, PartialEq, Eq)]
// Both variants carry whole records; boxing them would add an allocation per
// record to every million-entry import for no gain in a short-lived Vec.
#[allow(clippy::large_enum_variant)]
pub enum RecordChange {
    Put {
        before: Option<Record>,
        after: Record,
    },
    Delete {
        before: Record,
    },
}

/// Everything one version writes: all or nothing.
#[derive(Clone, Debug)]
pub struct Commit {
    pub info: VersionInfo,
    pub changes: Vec<RecordChange>,
    /// The effective delta agents receive, encoded once (c2wall.v1.Delta).
    pub delta: Vec<u8>,
    /// The audit record of this change, written in the same transaction.
    pub audit: AuditEvent,
}

/// One entry of the append-only audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// Assigned by the store.
    pub seq: u64,
    pub at: i64,
    /// Who: the caller's identity, or `expiry`, `feed:NAME`, `promotion`.
    pub actor: String,
    /// From where: the caller's address (empty for the coordinator itself).
    pub peer: String,
    /// publish, import, rollback, expiry, protect, unprotect, hold, confirm,
    /// reject, mode.
    pub action: String,
    /// What: version and counts, the prefix, the mode...
    pub detail: String,
    /// Why, as the caller said.
    pub reason: String,
}

/// A change held by the breaker until an admin confirms or rejects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChange {
    pub id: u64,
    pub created_at: i64,
    pub actor: String,
    pub reason: String,
    /// What `request` holds (see [`HeldKind`]).
    pub kind: HeldKind,
    pub request: Vec<u8>,
    /// What it would do, for `c2wall pending`.
    pub summary: String,
    pub state: HeldState,
}

/// Guards and audit: the protected allowlist, the audit log (append-only:
/// the SQLite store refuses updates and deletes with triggers), changes held
/// by the breaker.
pub trait GuardStore {
    /// Protected prefixes with why (seeded with public resolvers when new).
    fn protected(&self) -> Result<Vec<(String, String)>, CoordError>;
    /// Adds (`Some(why)`) or removes (`None`) a protected prefix, audited.
    fn set_protected(
        &mut self,
        prefix: &str,
        why: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError>;
    fn audit(&mut self, e: &AuditEvent) -> Result<(), CoordError>;
    /// Audit entries before `before` (0 = all), newest first.
    fn audit_log(&self, before: u64, limit: u32) -> Result<Vec<AuditEvent>, CoordError>;
    /// Stores a held change, audited; returns its id.
    fn hold(&mut self, p: &PendingChange, audit: &AuditEvent) -> Result<u64, CoordError>;
    /// Held changes (one by id, or every open one).
    fn pending(&self, id: Option<u64>) -> Result<Vec<PendingChange>, CoordError>;
    /// Closes a held change (confirmed / rejected), audited.
    fn close_pending(
        &mut self,
        id: u64,
        state: HeldState,
        audit: &AuditEvent,
    ) -> Result<(), CoordError>;
    /// Kill-switch overrides in force.
    fn modes(&self) -> Result<Modes, CoordError>;
    /// The staged rollout's state (JSON, see `crate::rollout::RolloutState`).
    fn rollout(&self) -> Result<Option<String>, CoordError>;
    /// Replaces it, with an audit record when a person or a breach moved it.
    fn set_rollout(&mut self, state: &str, audit: Option<&AuditEvent>) -> Result<(), CoordError>;
    /// Sets (`Some`) or clears an override, audited.
    fn set_mode(
        &mut self,
        scope: &Scope,
        mode: Option<Mode>,
        audit: &AuditEvent,
    ) -> Result<(), CoordError>;
}

/// What an agent last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    pub agent_id: String,
    /// Encoded c2wall.v1.AgentStatus.
    pub status: Vec<u8>,
    pub last_seen: i64,
}

/// Record changes per version, newest version first.
pub type ChangeLog = Vec<(u64, Vec<RecordChange>)>;

/// Wakes a replica when another one changed the database.
pub trait Watch: Send {
    /// Waits up to `timeout` for another replica's change: true when one
    /// came (or may have: after the connection was made again, anything may
    /// have changed), false when the time ran out.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, CoordError>;
}

/// Work that must run on one replica at a time (expiry, promotions, feed
/// pulls) runs where the lease is held.
pub trait Lease: Send {
    /// Whether this replica holds the lease now, taking it if it is free.
    fn held(&mut self) -> bool;
}

pub trait Store: GuardStore + Send + 'static {
    /// Another handle on the same store, for read-only queries while this
    /// one writes (SQLite in WAL mode lets it read during a write).
    fn reader(&self) -> Result<Box<dyn Store>, CoordError>;
    /// The store's lineage (random, made with the store) and the encoded
    /// c2wall.v1.LineageMove in force, if an operator moved the fleet here.
    fn lineage(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), CoordError>;
    /// Gives the store a new lineage that succeeds another (an operator's
    /// recovery or move), audited, in one transaction.
    fn set_lineage(
        &mut self,
        lineage: &[u8],
        moved: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), CoordError>;
    /// Takes the write lock every replica on the store shares (held until
    /// [`Store::unlock_writes`] or the connection ends) and returns the
    /// latest version in the store. None: this process is the only writer
    /// (SQLite), its memory is the truth and there is nothing to lock.
    fn lock_writes(&mut self) -> Result<Option<u64>, CoordError> {
        Ok(None)
    }
    fn unlock_writes(&mut self) -> Result<(), CoordError> {
        Ok(())
    }
    /// The latest version in the store, when other replicas may write it.
    fn latest_version(&self) -> Result<Option<u64>, CoordError> {
        Ok(None)
    }
    /// A way to hear of other replicas' changes (None: there are none).
    fn watch(&self) -> Result<Option<Box<dyn Watch>>, CoordError> {
        Ok(None)
    }
    /// The lease for once-only work (None: this process alone does it).
    fn lease(&self) -> Result<Option<Box<dyn Lease>>, CoordError> {
        Ok(None)
    }
    /// The current records and the latest version (0 and empty when new).
    fn load(&mut self) -> Result<(Vec<Record>, Option<VersionInfo>), CoordError>;
    /// Durably appends one version; returns only once it is on disk.
    fn append(&mut self, commit: &Commit) -> Result<(), CoordError>;
    /// Encoded deltas of the versions after `version`, oldest first; `None` if
    /// the log no longer reaches back that far.
    fn deltas_after(&self, version: u64) -> Result<Option<Vec<Vec<u8>>>, CoordError>;
    /// Record changes of the versions after `version`, newest first; `None` if
    /// compacted away.
    fn changes_after(&self, version: u64) -> Result<Option<ChangeLog>, CoordError>;
    /// Versions before `before` (0 = all), newest first.
    fn history(&self, before: u64, limit: u32) -> Result<Vec<VersionInfo>, CoordError>;
    /// Drops the log of versions older than `keep_from` (their history rows stay).
    fn compact(&mut self, keep_from: u64) -> Result<(), CoordError>;
    /// Oldest version whose delta is still kept.
    fn log_start(&self) -> Result<u64, CoordError>;
    fn put_agent(&mut self, row: &AgentRow) -> Result<(), CoordError>;
    fn agents(&self) -> Result<Vec<AgentRow>, CoordError>;
    /// Adds an agent's sightings: counts add up, first/last seen widen.
    fn add_sightings(
        &mut self,
        agent_id: &str,
        sightings: &[c2wall_proto::v1::Sighting],
    ) -> Result<(), CoordError>;
    /// Sightings last seen at or after `since`, newest first, those `keep`
    /// accepts, at most `limit`.
    fn sightings(
        &self,
        since: i64,
        keep: &dyn Fn(&c2wall_proto::v1::Sighting) -> bool,
        limit: usize,
    ) -> Result<Vec<(String, c2wall_proto::v1::Sighting)>, CoordError>;
}
