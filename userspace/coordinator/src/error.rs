use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoordError {
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
    /// The store cannot be reached; the call may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// Another replica wrote the version this one was about to write (the
    /// write lock makes this a bug or a lost lock, never a normal race).
    #[error("the store is at version {latest}, ahead of this replica; try again")]
    Behind { latest: u64 },
    #[error("store {path}: {message}")]
    StoreOpen { path: String, message: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Invalid(#[from] c2wall_model::wire::WireError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error(
        "the store is damaged, refusing to serve it: {0}. Restore the right copy, or start \
         once with --recover-store REASON to serve it as a new lineage (audited; agents \
         follow only because the move is signed)"
    )]
    Damaged(String),
    #[error("config file {path}: {message}")]
    Config { path: String, message: String },
    /// A setting refused, naming it (e.g. `rollout.stage[0] (canary): ...`).
    #[error("{0}")]
    Setting(String),
}

impl From<CoordError> for tonic::Status {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Invalid(w) => w.into(),
            CoordError::NotFound(m) => tonic::Status::not_found(m),
            CoordError::Precondition(m) => tonic::Status::failed_precondition(m),
            CoordError::Unavailable(m) => tonic::Status::unavailable(m),
            e @ CoordError::Behind { .. } => tonic::Status::aborted(e.to_string()),
            other => {
                tracing::error!(error = %other, "internal error");
                tonic::Status::internal(other.to_string())
            }
        }
    }
}
