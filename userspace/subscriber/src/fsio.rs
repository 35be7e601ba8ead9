//! Durable writes for the saved set.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::error::FileError;

/// Appends to a file and fsyncs it (a journal record).
pub fn append_synced(path: &Path, data: &[u8]) -> Result<(), FileError> {
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
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    stage(path, data)?.commit()
}

/// New content for `path`, written and fsynced beside it but not yet in
/// its place: the slow half of [`write_atomic`], which can run while
/// something else decides whether the content is to be kept. Dropped
/// without [`Staged::commit`], the temp file is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    done: bool,
}

/// Writes `data` to `path`'s temp file and fsyncs it.
pub fn stage(path: &Path, data: &[u8]) -> Result<Staged, FileError> {
    let err = |source| FileError::Write {
        path: path.into(),
        source,
    };
    let staged = Staged {
        tmp: path.with_extension("tmp"),
        path: path.into(),
        done: false,
    };
    let mut f = fs::File::create(&staged.tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(staged)
}

impl Staged {
    /// Puts the content in place (rename, fsync the folder).
    pub fn commit(mut self) -> Result<(), FileError> {
        fs::rename(&self.tmp, &self.path).map_err(|source| FileError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.done = true;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The pseudonymisation key: read from `path`, or created (32 random bytes,
/// mode 0600) if it does not exist: the key that pseudonymises subscribers
/// (an agent's, or a coordinator's before it forwards sightings upstream).
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], FileError> {
    match std::fs::read(path) {
        Ok(b) if b.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b);
            Ok(k)
        }
        Ok(b) => {
            // Pseudonyms are not worth losing enforcement for: the damaged
            // key is set aside and a new one made (pseudonyms change).
            let aside = path.with_extension("damaged");
            tracing::error!(path = %path.display(), bytes = b.len(), aside = %aside.display(),
                "the sightings key is damaged (not 32 bytes): set aside, a new key is made and \
                 subscriber pseudonyms change from now on");
            std::fs::rename(path, &aside).map_err(|source| FileError::Write {
                path: path.into(),
                source,
            })?;
            load_or_create_key(path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k: [u8; 32] = rand::random();
            use std::os::unix::fs::OpenOptionsExt;
            let err = |source| FileError::Write {
                path: path.into(),
                source,
            };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
            std::io::Write::write_all(&mut f, &k).map_err(err)?;
            f.sync_all().map_err(err)?;
            Ok(k)
        }
        Err(source) => Err(FileError::Read {
            path: path.into(),
            source,
        }),
    }
}
