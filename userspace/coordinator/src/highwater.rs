//! The high-water mark: the lineage, version and digest of the last version
//! acknowledged to a caller, kept in a small file outside the database. At
//! start the store must reach it: a store that was replaced, restored from an
//! older backup or lost its WAL is recognised instead of being served.
//!
//! The file holds two fixed-size slots written alternately, each with its own
//! checksum, so a write torn by a crash leaves the other slot intact. Each
//! write is one `pwrite` and one `fdatasync` (no rename per version).

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::error::CoordError;

const SLOT: usize = 128;
const MAGIC: &[u8; 8] = b"C2WHWM1\0";

/// What the last acknowledged version was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub lineage: Vec<u8>,
    pub version: u64,
    pub digest: Vec<u8>,
}

pub struct HighWater {
    path: PathBuf,
    file: File,
    seq: u64,
}

fn encode(seq: u64, m: &Mark) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_be_bytes());
    b[16..24].copy_from_slice(&m.version.to_be_bytes());
    let l = m.lineage.len().min(32);
    b[24] = l as u8;
    b[25..25 + l].copy_from_slice(&m.lineage[..l]);
    let d = m.digest.len().min(32);
    b[57] = d as u8;
    b[58..58 + d].copy_from_slice(&m.digest[..d]);
    let sum = Sha256::digest(&b[..SLOT - 32]);
    b[SLOT - 32..].copy_from_slice(&sum);
    b
}

fn decode(b: &[u8]) -> Option<(u64, Mark)> {
    if b.len() < SLOT
        || &b[..8] != MAGIC
        || Sha256::digest(&b[..SLOT - 32])[..] != b[SLOT - 32..SLOT]
    {
        return None;
    }
    let seq = u64::from_be_bytes(b[8..16].try_into().ok()?);
    let version = u64::from_be_bytes(b[16..24].try_into().ok()?);
    let l = (b[24] as usize).min(32);
    let d = (b[57] as usize).min(32);
    Some((
        seq,
        Mark {
            lineage: b[25..25 + l].to_vec(),
            version,
            digest: b[58..58 + d].to_vec(),
        },
    ))
}

/// The high-water file of a store at `store` (`coordinator.db` ->
/// `coordinator.db.highwater`).
pub fn path_for(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".highwater");
    p.into()
}

impl HighWater {
    /// Opens (creating) the file; returns the mark it holds, if any.
    pub fn open(path: &Path) -> Result<(Self, Option<Mark>), CoordError> {
        let err = |e: std::io::Error| CoordError::StoreOpen {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        let mut buf = vec![0u8; 2 * SLOT];
        let n = file.read_at(&mut buf, 0).map_err(err)?;
        buf.truncate(n);
        let best = buf
            .chunks(SLOT)
            .filter_map(decode)
            .max_by_key(|(seq, _)| *seq);
        if n > 0 && best.is_none() {
            return Err(CoordError::StoreOpen {
                path: path.display().to_string(),
                message: "the high-water mark is unreadable (both slots damaged)".into(),
            });
        }
        let seq = best.as_ref().map_or(0, |(s, _)| *s);
        Ok((
            HighWater {
                path: path.to_path_buf(),
                file,
                seq,
            },
            best.map(|(_, m)| m),
        ))
    }

    /// Records `m` durably (returns once it is on disk).
    pub fn write(&mut self, m: &Mark) -> Result<(), CoordError> {
        self.seq += 1;
        let slot = (self.seq % 2) * SLOT as u64;
        let err = |e: std::io::Error| CoordError::StoreOpen {
            path: self.path.display().to_string(),
            message: format!("writing the high-water mark: {e}"),
        };
        self.file
            .write_all_at(&encode(self.seq, m), slot)
            .map_err(err)?;
        self.file.sync_data().map_err(err)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_intact_slot_wins_and_a_torn_write_falls_back() {
        let dir = std::env::temp_dir().join(format!("c2wall-hwm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.db.highwater");
        let _ = std::fs::remove_file(&p);
        let (mut h, m) = HighWater::open(&p).unwrap();
        assert_eq!(m, None);
        let mark = |v| Mark {
            lineage: vec![7; 16],
            version: v,
            digest: vec![v as u8; 32],
        };
        h.write(&mark(1)).unwrap();
        h.write(&mark(2)).unwrap();
        h.write(&mark(3)).unwrap();
        drop(h);
        assert_eq!(HighWater::open(&p).unwrap().1, Some(mark(3)));
        // Tear the newest slot: the one before it is read.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0xff; 10], SLOT as u64 + 30).unwrap();
        let (mut h, m) = HighWater::open(&p).unwrap();
        assert_eq!(m, Some(mark(2)));
        // Writing goes on after it.
        h.write(&mark(4)).unwrap();
        assert_eq!(HighWater::open(&p).unwrap().1, Some(mark(4)));
        std::fs::write(&p, [1u8; 2 * SLOT]).unwrap();
        assert!(HighWater::open(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
