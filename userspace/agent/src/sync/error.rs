//! Why a sync session ended.

use super::set::SetError;
use crate::error::AgentError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("coordinator: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the coordinator: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("applying: {0}")]
    Apply(#[from] AgentError),
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
