//! Kernel memory of maps: the `memlock` the kernel charges for each, as its
//! fdinfo reports it (benchmark, tests, diagnostics).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use aya::maps::MapData;

/// The memory the kernel charges for one map.
pub fn memlock(data: &MapData) -> io::Result<u64> {
    let fd = data.fd().as_fd().as_raw_fd();
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::other("no memlock in fdinfo"))
}

/// The memory of every map pinned directly under `dir` (for the agent's
/// maps dir: the outer maps and the inner maps in use, so both rule sets).
pub fn pinned_memlock(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if let Ok(data) = MapData::from_pin(&path) {
            total += memlock(&data)?;
        }
    }
    Ok(total)
}
