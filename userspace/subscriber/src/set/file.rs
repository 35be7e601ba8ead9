//! The verified set on disk: a snapshot file, the journal of deltas applied
//! since, and the previous generation kept as a fallback.

use std::path::{Path, PathBuf};

use c2wall_model::sign::Trust;
use c2wall_proto::v1 as pb;
use prost::Message;

use super::{Pending, SyncedSet};
use crate::error::FileError;
use crate::fsio::{append_synced, stage, Staged};
use crate::value::SetValue;

/// The journal next to a snapshot file.
pub fn journal_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".journal");
    p.into()
}

/// The previous generation of a snapshot file.
pub fn prev_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".prev");
    p.into()
}

/// Bytes in the journal of `snapshot` (0 if there is none).
pub fn journal_len(snapshot: &Path) -> usize {
    std::fs::metadata(journal_path(snapshot))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

impl<V: SetValue> SyncedSet<V> {
    /// Loads the persisted set: the snapshot file and its journal, or, when
    /// the snapshot file is damaged, the previous generation (kept by
    /// [`SyncedSet::save`]); a damaged file is set aside as `.damaged`. With
    /// neither readable the subscriber starts without a saved list (None)
    /// rather than not at all: a node that reboots with its coordinator away
    /// still enforces its local lists, and the kernel's list if it kept one.
    pub fn load(path: &Path) -> Result<Option<Self>, FileError> {
        match Self::load_generation(path, true) {
            Ok(set) => Ok(set),
            Err(FileError::Damaged {
                reason: message, ..
            }) => {
                let aside = path.with_extension("damaged");
                tracing::error!(path = %path.display(), error = %message, aside = %aside.display(),
                    "the saved list is damaged: set aside, trying the previous generation");
                let _ = std::fs::rename(path, &aside);
                let _ = std::fs::remove_file(journal_path(path));
                match Self::load_generation(&prev_path(path), false) {
                    Ok(Some(set)) => {
                        tracing::warn!(
                            version = set.version,
                            "using the previous saved generation"
                        );
                        Ok(Some(set))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => {
                        tracing::error!(error = %e, "the previous generation is damaged too: \
                            starting without a saved list");
                        Ok(None)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One generation: the snapshot file, and its journal if asked. A missing
    /// file is `None`, a damaged snapshot an error. A journal record that
    /// does not decode or verify (a torn last append) ends the journal there:
    /// the set is then an earlier version, and the coordinator sends the rest.
    fn load_generation(path: &Path, with_journal: bool) -> Result<Option<Self>, FileError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(FileError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let bad = |reason: String| FileError::Damaged {
            path: path.into(),
            reason,
        };
        let s = pb::SnapshotChunk::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        // The state dir is this node's own: its content was verified before
        // it was written.
        let none = Trust::default();
        let mut set = Self::from_snapshot(&s.lineage, s.version, &s.digest, &s.entries, &[], &none)
            .map_err(|e| bad(e.to_string()))?;
        let journal = journal_path(path);
        if !with_journal {
            return Ok(Some(set));
        }
        let data = match std::fs::read(&journal) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(FileError::Read {
                    path: journal,
                    source,
                })
            }
        };
        let mut buf = data.as_slice();
        while !buf.is_empty() {
            let applied = pb::Delta::decode_length_delimited(&mut buf)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    set.apply_delta(&d, &mut Pending::default(), &none)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = applied {
                tracing::warn!(path = %journal.display(), version = set.version, error = %e,
                    "persisted journal ends in a damaged record; using the version before it");
                break;
            }
        }
        Ok(Some(set))
    }

    /// Persists the whole set atomically (temp file, fsync, rename) and
    /// empties the journal. The file it replaces is kept as the previous
    /// generation, the fallback should this one ever read back damaged.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        Self::save_staged(path, stage(path, &self.encode())?)
    }

    /// The snapshot file's content for this set (see [`SyncedSet::save`]).
    /// One `SnapshotChunk`: its other fields, then each entry encoded
    /// straight into the buffer (a repeated field may follow the others: it
    /// decodes the same), so a million entries are never wire messages all
    /// at once.
    pub fn encode(&self) -> Vec<u8> {
        let head = pb::SnapshotChunk {
            version: self.version,
            digest: self.digest.to_bytes(),
            seq: 0,
            last: true,
            entries: Vec::new(),
            signature: Vec::new(),
            lineage: self.lineage.clone(),
            moved: None,
        };
        let mut buf = head.encode_to_vec();
        for v in self.entries.values() {
            v.encode_field(c2wall_proto::SNAPSHOT_CHUNK_ENTRIES, &mut buf);
        }
        buf
    }

    /// [`SyncedSet::save`] with the content written and fsynced already
    /// (see [`crate::fsio::Staged`]): the current file becomes the previous
    /// generation, the staged one takes its place, the journal goes.
    pub fn save_staged(path: &Path, staged: Staged) -> Result<(), FileError> {
        if path.exists() {
            // A hard link, so the current file stays in place until the new
            // one replaces it atomically.
            let prev = prev_path(path);
            let _ = std::fs::remove_file(&prev);
            std::fs::hard_link(path, &prev).map_err(|source| FileError::Write {
                path: prev.clone(),
                source,
            })?;
        }
        staged.commit()?;
        match std::fs::remove_file(journal_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileError::Write {
                path: journal_path(path),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Persists the deltas of `p` by appending them to the journal (one
    /// fsync); returns the bytes appended.
    pub fn journal(path: &Path, p: &Pending<V>) -> Result<usize, FileError> {
        if p.journal.is_empty() {
            return Ok(0);
        }
        append_synced(&journal_path(path), &p.journal)?;
        Ok(p.journal.len())
    }
}
