//! What a subscriber is sent before live deltas: the deltas it missed when
//! its version and digest are ours and the log reaches back that far, else
//! a snapshot.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::fanout::{Fanout, Live};
use super::frame::{delta_frames, Detail};
use super::squash::catch_up_frames;
use crate::core::Coordinator;
use crate::error::CoordError;

pub enum Plan {
    /// The snapshot's chunks, shared by every subscriber at this version.
    Snapshot(Arc<Vec<Bytes>>),
    /// The deltas it missed (possibly none: it is current).
    Deltas(Vec<Bytes>),
}

/// What the subscriber asked from.
pub struct Position<'a> {
    pub lineage: &'a [u8],
    pub version: u64,
    pub digest: &'a [u8],
    pub force_snapshot: bool,
    /// What a snapshot's entries carry, if one is sent.
    pub detail: Detail,
}

/// The plan for a subscriber, the version it brings it to, and the live
/// receiver to follow with (taken under the writer's lock, so no version
/// falls between the two). With a rollout stage (`cap`, its ceiling) the
/// deltas go no further than the cap, as one net delta. A subscriber that needs
/// a snapshot gets the latest version whatever its ceiling: a node with
/// nothing enforces nothing, and only the latest set is kept to send.
pub fn plan(
    coord: &Coordinator,
    fanout: &Fanout,
    from: &Position<'_>,
    cap: Option<u64>,
) -> Result<(Plan, u64, broadcast::Receiver<Live>), CoordError> {
    let inner = coord.inner.lock().expect("lock");
    let state = coord.state.read().expect("lock");
    let rx = fanout.receiver();
    let current = state.version;
    let same_lineage = from.lineage.is_empty() || from.lineage == inner.lineage.as_slice();
    let digest_ok = from.version > 0
        && same_lineage
        && from.version <= current
        && inner
            .store
            .history(from.version + 1, 1)?
            .first()
            .is_some_and(|v| v.version == from.version && v.digest == from.digest);
    if !from.force_snapshot && digest_ok {
        if let Some(encoded) = inner.store.deltas_after(from.version)? {
            return Ok(match cap {
                None => {
                    let deltas = encoded.iter().flat_map(|b| delta_frames(b)).collect();
                    (Plan::Deltas(deltas), current, rx)
                }
                Some(cap) => {
                    let to = current.min(cap).max(from.version);
                    let deltas = catch_up_frames(&encoded, from.version, to)?;
                    (Plan::Deltas(deltas), to, rx)
                }
            });
        }
    }
    let chunks = fanout.snapshot(coord, &inner, &state, from.detail);
    Ok((Plan::Snapshot(chunks), current, rx))
}
