//! Why a sync session ended, and why the saved set could not be read or
//! written.

use std::path::PathBuf;

use super::set::SetError;

/// What enforcing a verified set failed with: the subscriber's own error
/// (the agent's kernel maps, a coordinator's store), kept whole.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("coordinator: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the coordinator: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("applying: {0}")]
    Apply(ApplyError),
    #[error("snapshot chunk {seq} of version {version} out of order")]
    Chunk { version: u64, seq: u32 },
}

impl SyncError {
    /// Errors after which only a snapshot can bring the set back in line.
    pub fn needs_snapshot(&self) -> bool {
        matches!(
            self,
            SyncError::Set(SetError::Gap { .. } | SetError::Digest { .. })
                | SyncError::Chunk { .. }
        )
    }
}

/// The saved set on disk.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: damaged persisted blocklist ({reason}); delete it to start from a snapshot")]
    Damaged { path: PathBuf, reason: String },
}
