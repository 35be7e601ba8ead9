//! Durable writes for the saved set.

use std::{fs, io::Write, path::Path};

use crate::error::FileError;

/// Appends to a file and fsyncs it (a journal record).
pub(crate) fn append_synced(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.into(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Replaces `path` atomically (temp file, fsync, rename, fsync the folder).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
