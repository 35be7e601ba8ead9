//! libxdp's bpffs layout and lock: `xdp/dispatch-IFINDEX-ID/prog<i>-{prog,link}`
//! under `$LIBXDP_BPFFS` (default /sys/fs/bpf), and an flock on `xdp/`.

use std::{
    fs,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use crate::error::AgentError;

/// libxdp's directory lock: an exclusive flock on the bpffs `xdp/`
/// directory, held while dispatchers are read, built and swapped.
pub struct Lock {
    _held: std::fs::File,
}

impl Lock {
    pub fn acquire() -> Result<Lock, AgentError> {
        let dir = xdp_dir();
        fs::create_dir_all(&dir).map_err(|source| AgentError::WriteFile {
            path: dir.clone(),
            source,
        })?;
        let f = fs::File::open(&dir).map_err(|source| AgentError::ReadFile {
            path: dir.clone(),
            source,
        })?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(AgentError::ReadFile {
                path: dir,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock { _held: f })
    }
}

/// libxdp's state directory: `$LIBXDP_BPFFS/xdp`, by default /sys/fs/bpf/xdp.
fn xdp_dir() -> PathBuf {
    std::env::var_os("LIBXDP_BPFFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::paths::BPFFS_ROOT.into())
        .join("xdp")
}

pub fn pin_dir(ifindex: u32, prog_id: u32) -> PathBuf {
    xdp_dir().join(format!("dispatch-{ifindex}-{prog_id}"))
}

pub fn unpin_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = fs::remove_file(e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}
