use std::path::PathBuf;

use thiserror::Error;

/// Every way the agent can fail, each naming what it failed on.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Setting(String),
    #[error("map {map}: write failed: {source}")]
    MapWrite {
        map: &'static str,
        source: std::io::Error,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error(
        "the blocklist needs {needed} {what} slots (while it is applied, old and new slots \
         are both in the map) but the capacity is {capacity}; raise `{setting}` in the config \
         (then `c2wall-agent detach` and restart: capacities apply when maps are created)"
    )]
    Capacity {
        what: &'static str,
        needed: usize,
        capacity: usize,
        setting: &'static str,
    },
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("pinned link {path}: {source}")]
    Link {
        path: PathBuf,
        source: aya::programs::links::LinkError,
    },
    #[error("interface {name}: {message}")]
    Interface { name: String, message: String },
    #[error("XDP dispatcher (libxdp protocol): {0}")]
    Dispatcher(String),
    #[error(
        "this kernel refuses freplace programs ({0}), and the components of a libxdp \
         dispatcher are freplace programs (xdp-loader falls back to single-program mode here \
         too); share the interface with `--attach-hook tc` instead"
    )]
    FreplaceRefused(String),
    #[error("XDP dispatcher's configuration map: {0}")]
    DispatcherMap(#[from] aya::maps::MapError),
    #[error("bpffs: {0}")]
    Bpffs(String),
    #[error("a delta cannot be applied before the first full sync")]
    DeltaBeforeFullSync,
    #[error(
        "rule set {0}'s maps cannot be read (their pins do not name the maps the program \
         reads, as after a crash mid-reload); the next full sync replaces them"
    )]
    UnreadableRuleSet(u8),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// An in-place change found no room in its slot table or the stash; the
    /// applier answers it with a reload, which sizes new tables.
    #[error("the {0} slot table and its stash are full")]
    SetFull(&'static str),
    #[error(
        "cannot place {slots} {what} slots in a slot table: two buckets per slot \
         did not suffice at any size tried"
    )]
    Placement { what: &'static str, slots: usize },
}

/// The saved set's and key files' errors, as the agent names them.
impl From<c2wall_subscriber::FileError> for AgentError {
    fn from(e: c2wall_subscriber::FileError) -> Self {
        use c2wall_subscriber::FileError;
        match e {
            FileError::Read { path, source } => AgentError::ReadFile { path, source },
            FileError::Write { path, source } => AgentError::WriteFile { path, source },
            FileError::Damaged { path, reason } => AgentError::Config {
                message: format!(
                    "damaged persisted blocklist ({reason}); delete it to start from a snapshot"
                ),
                path,
            },
        }
    }
}
