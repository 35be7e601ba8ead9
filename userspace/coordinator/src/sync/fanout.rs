//! Fan-out: every committed version framed once and shared by every open
//! stream (a refcount, not a copy), and the snapshot of a version built
//! once for all subscribers that need one.

use std::sync::{atomic::Ordering, Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::frame::{delta_frames, snapshot_chunks, Detail, SnapshotSeal};
use crate::core::{Coordinator, Inner, OnCommit};
use crate::state::State;

/// A live delta: its version and its framed SyncMessages (one, or the parts
/// of a large delta).
pub type Live = (u64, Arc<Vec<Bytes>>);

/// Snapshot chunks keyed by (version, snapshot epoch).
type Cached = ((u64, u64), Arc<Vec<Bytes>>);

pub struct Fanout {
    live: broadcast::Sender<Live>,
    /// Snapshot chunks of one (version, snapshot epoch), built on first
    /// demand, one per [`Detail`] (agents and downstream coordinators may
    /// subscribe at the same version).
    snapshot: Mutex<[Option<Cached>; 2]>,
}

impl OnCommit for Fanout {
    fn committed(&self, version: u64, delta: &[u8]) {
        // No receivers is fine: nobody is subscribed.
        let _ = self.live.send((version, Arc::new(delta_frames(delta))));
    }
}

impl Fanout {
    /// A fan-out told of every version `coord` makes from now on.
    pub fn attach(coord: &Coordinator) -> Arc<Fanout> {
        let (live, _) = broadcast::channel(coord.live_buffer.max(1));
        let f = Arc::new(Fanout {
            live,
            snapshot: Mutex::new([None, None]),
        });
        coord.on_commit(f.clone());
        f
    }

    /// A receiver of every version committed after this call. Taken under
    /// the writer's lock (see [`OnCommit`]), together with the plan.
    pub(super) fn receiver(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }

    /// The snapshot of `state` with `detail`, shared by every subscriber of
    /// its version that asks for the same detail.
    pub(super) fn snapshot(
        &self,
        coord: &Coordinator,
        inner: &Inner,
        state: &State,
        detail: Detail,
    ) -> Arc<Vec<Bytes>> {
        let key = (state.version, coord.snapshot_epoch.load(Ordering::Relaxed));
        let mut caches = self.snapshot.lock().expect("lock");
        let cache = &mut caches[detail as usize];
        match cache.as_ref() {
            Some((k, chunks)) if *k == key => chunks.clone(),
            _ => {
                let seal = SnapshotSeal {
                    signer: inner.signer.as_ref(),
                    lineage: &inner.lineage,
                    moved: inner.moved.as_ref(),
                };
                let chunks = Arc::new(snapshot_chunks(&seal, state, detail));
                *cache = Some((key, chunks.clone()));
                chunks
            }
        }
    }
}
