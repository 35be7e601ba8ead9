//! The program's ring buffers as the agent reads them (sampled drops, DNS
//! answers): opened from their pins, drained whenever the kernel says they
//! hold data.

use std::os::fd::AsRawFd;

use aya::maps::{Map, MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::paths::Paths;

/// The ring buffer pinned as `map`; None, with the reason logged, when it
/// cannot be opened (`what` says what is then missing).
pub fn open_pinned(paths: &Paths, map: &str, what: &str) -> Option<RingBuf<MapData>> {
    let opened = MapData::from_pin(paths.map(map))
        .map_err(|e| e.to_string())
        .and_then(|d| Map::from_map_data(d).map_err(|e| e.to_string()))
        .and_then(|m| RingBuf::try_from(m).map_err(|e| e.to_string()));
    match opened {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, map, "cannot open a ring buffer; {what}");
            None
        }
    }
}

struct Fd(RingBuf<MapData>);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Calls `batch` with the ring each time it has data, until the task is
/// dropped; `batch` takes what it wants with `ring.next()`.
pub async fn drain(
    ring: RingBuf<MapData>,
    name: &str,
    mut batch: impl FnMut(&mut RingBuf<MapData>),
) {
    // SAFETY: the ring buffer owns its fd and keeps it open, unchanged, for
    // as long as the AsyncFd holds it.
    let mut fd = match unsafe { AsyncFd::register(Fd(ring)) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, ring = name, "cannot poll a ring buffer");
            return;
        }
    };
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, ring = name, "polling a ring buffer");
                return;
            }
        };
        batch(&mut guard.get_inner_mut().0);
        guard.clear_ready();
    }
}
