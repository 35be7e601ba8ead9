//! Every filesystem location the agent uses, in one place.

use std::path::{Path, PathBuf};

use c2wall_common::ABI_VERSION;

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/c2wall";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/c2wall";
pub const DEFAULT_CONFIG: &str = "/etc/c2wall/agent.toml";
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

#[derive(Clone, Debug)]
pub struct Paths {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Paths {
    /// Maps live under a directory named after the ABI version, so an agent
    /// with a different map layout never reuses them.
    pub fn maps_dir(&self) -> PathBuf {
        self.pin_dir.join(format!("maps-v{ABI_VERSION}"))
    }
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }
    pub fn links_dir(&self) -> PathBuf {
        self.pin_dir.join("links")
    }
    pub fn link(&self, interface: &str) -> PathBuf {
        self.links_dir().join(interface)
    }
    /// Interfaces that carry our clsact filter (one empty directory each).
    pub fn clsact_dir(&self) -> PathBuf {
        self.pin_dir.join("tc-clsact")
    }
    /// Interfaces where our component sits in a libxdp dispatcher (one
    /// empty directory each; the pins themselves are libxdp's).
    pub fn multi_dir(&self) -> PathBuf {
        self.pin_dir.join("xdp-multi")
    }
    pub fn program(&self) -> PathBuf {
        self.pin_dir.join("prog")
    }
    /// The last coordinator set applied (see sync.rs).
    pub fn synced_file(&self) -> PathBuf {
        self.state_dir.join("coordinator-set.pb")
    }
    /// Entry id table (see ids.rs).
    pub fn ids_file(&self) -> PathBuf {
        self.state_dir.join("entry-ids")
    }
    /// The centre's kill-switch mode, kept across restarts (absent = none).
    pub fn mode_override_file(&self) -> PathBuf {
        self.state_dir.join("mode-override")
    }
    /// The key of the subscriber pseudonyms (see sightings.rs).
    pub fn sightings_key(&self) -> PathBuf {
        self.state_dir.join("sightings.key")
    }
}

/// Whether `path` is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path, st is written by statfs.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
