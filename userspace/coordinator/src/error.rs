use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoordError {
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
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
}

impl From<CoordError> for tonic::Status {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Invalid(w) => w.into(),
            CoordError::NotFound(m) => tonic::Status::not_found(m),
            CoordError::Precondition(m) => tonic::Status::failed_precondition(m),
            other => {
                tracing::error!(error = %other, "internal error");
                tonic::Status::internal(other.to_string())
            }
        }
    }
}
