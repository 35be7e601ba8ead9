//! Persistence behind a narrow interface: the coordinator's logic lives in
//! memory (crate::state) and hands the store one finished version at a time.
//! SQLite is the embedded default; a PostgreSQL store implements the same trait.

pub mod sqlite;

use c2wall_model::Record;

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
}

/// A record-level change, with what it replaced (for rollback).
#[derive(Clone, Debug, PartialEq, Eq)]
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

pub trait Store: Send + 'static {
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
