//! Every way the exporter can fail, each naming what it failed on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    #[error("config file {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// BIRD refused its configuration or did not answer.
    #[error("bird: {0}")]
    Bird(String),
}
