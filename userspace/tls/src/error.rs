use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}: already exists; remove it or pick another --dir/--name", path.display())]
    Exists { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

impl TlsError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        TlsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn file(path: &std::path::Path, message: impl Into<String>) -> Self {
        TlsError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
