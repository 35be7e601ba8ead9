//! The coordinator's operations, independent of gRPC: publish, rollback,
//! expiry, compaction, subscription plans, agent status.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use c2wall_model::{Identity, SetDigest};
use c2wall_proto::v1 as pb;

pub use crate::origin::{now, Origin};

use crate::error::CoordError;
use crate::guards::Guards;
use crate::state::State;
use crate::store::{PendingChange, Store, VersionInfo};
use c2wall_model::sign::Signer32;

/// The protected allowlist as stored.
pub(crate) fn protected_of(
    store: &dyn Store,
) -> Result<std::collections::BTreeMap<c2wall_model::Target, String>, CoordError> {
    store
        .protected()?
        .into_iter()
        .map(|(p, why)| {
            p.parse()
                .map(|p| (p, why))
                .map_err(|e: c2wall_model::ModelError| CoordError::Corrupt(e.to_string()))
        })
        .collect()
}

/// What a publish did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    Version(VersionInfo),
    /// Held by the change breaker until an admin confirms it.
    Held(PendingChange),
}

/// A withdrawal: one source's record of an identity, or every source's.
#[derive(Clone, Debug)]
pub struct Withdrawal {
    pub identity: Identity,
    pub source: Option<String>,
}

/// Told of each version as it becomes the latest, with its encoded delta
/// (c2wall.v1.Delta), while the writer's lock is held: so a reader that
/// takes the same lock sees every version either in the store or here.
/// The stream server's fan-out is one (see `crate::sync`); the core knows
/// nothing of streams.
pub trait OnCommit: Send + Sync {
    fn committed(&self, version: u64, delta: &[u8]);
}

pub struct Coordinator {
    /// The writer's side: the store and everything a change needs. Writers
    /// hold it for a whole change, so changes are serialised.
    pub(crate) inner: Mutex<Inner>,
    /// The working set. Writers read it to prepare a change and take it for
    /// writing only to apply one already on disk, so a long commit never
    /// blocks readers (explain, get, list) for its store write.
    pub(crate) state: std::sync::RwLock<State>,
    /// A second handle on the store for read-only queries (history, audit,
    /// agents, sightings), which would otherwise wait for a commit.
    pub(crate) reader: Mutex<Box<dyn Store>>,
    /// Kill-switch overrides; every agent stream watches it.
    pub(crate) modes: tokio::sync::watch::Sender<c2wall_model::Modes>,
    /// The lease for once-only work, with replicas (see [`Coordinator::leads`]).
    lease: Option<Mutex<Box<dyn crate::store::Lease>>>,
    /// Told of every version (see [`OnCommit`]).
    sinks: Mutex<Vec<Arc<dyn OnCommit>>>,
    /// Deltas a subscriber may fall behind before its stream is ended.
    pub(crate) live_buffer: usize,
    /// Changes when what a snapshot of the same version looks like changes
    /// (its signer, its lineage move): cached snapshots are keyed by it.
    pub(crate) snapshot_epoch: AtomicU64,
    latest: AtomicU64,
    pub(crate) connected: Mutex<HashMap<String, usize>>,
}

mod follow;
mod publish;

pub(crate) struct Inner {
    pub(crate) store: Box<dyn Store>,
    /// The store's lineage and the operator's move to it, if any (unsigned:
    /// signed as snapshots are framed, with the signer then in use).
    pub(crate) lineage: Vec<u8>,
    pub(crate) moved: Option<pb::LineageMove>,
    /// The last acknowledged version, outside the store (None: not kept).
    pub(crate) highwater: Option<crate::highwater::HighWater>,
    pub(crate) guards: Guards,
    /// Signs each version's digest (None: versions are unsigned).
    pub(crate) signer: Option<Signer32>,
    pub(crate) last_tick: i64,
}

impl Coordinator {
    /// `live_buffer`: deltas a subscriber may fall behind before its stream is
    /// ended (it then resubscribes and catches up from the log). The store's
    /// own consistency is checked (see [`Coordinator::open_checked`]); no
    /// high-water mark is kept.
    pub fn open(store: Box<dyn Store>, live_buffer: usize) -> Result<Arc<Self>, CoordError> {
        Self::open_checked(store, live_buffer, &crate::integrity::Integrity::default())
    }

    /// Opens `store` after checking it (see [`crate::integrity`]): a store
    /// whose records do not match its last version's digest, or that lacks
    /// acknowledged versions, is refused unless `integrity.recover` says an
    /// operator accepts it, which moves the store to a new lineage.
    pub fn open_checked(
        mut store: Box<dyn Store>,
        live_buffer: usize,
        integrity: &crate::integrity::Integrity,
    ) -> Result<Arc<Self>, CoordError> {
        let (records, latest) = store.load()?;
        let version = latest.as_ref().map_or(0, |v| v.version);
        // The set as of the last version: what its digest covers. Windows that
        // closed or opened since are the expiry worker's next version.
        let t = latest.as_ref().map_or_else(now, |v| v.created_at);
        let state = State::load(records, version, t);
        let checked = integrity.check(store.as_mut(), &state, latest.as_ref())?;
        let reader = store.reader()?;
        let (watch, lease) = (store.watch()?, store.lease()?);
        let coord = Arc::new(Coordinator {
            latest: AtomicU64::new(version),
            modes: tokio::sync::watch::Sender::new(store.modes()?),
            state: std::sync::RwLock::new(state),
            reader: Mutex::new(reader),
            inner: Mutex::new(Inner {
                guards: Guards::new(Default::default(), protected_of(store.as_ref())?),
                signer: None,
                store,
                last_tick: t,
                lineage: checked.lineage,
                moved: checked.moved,
                highwater: checked.highwater,
            }),
            lease: lease.map(Mutex::new),
            sinks: Mutex::new(Vec::new()),
            live_buffer,
            snapshot_epoch: AtomicU64::new(0),
            connected: Mutex::new(HashMap::new()),
        });
        if let Some(w) = watch {
            coord.follow(w);
        }
        Ok(coord)
    }

    pub fn latest_version(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    pub fn digest(&self) -> SetDigest {
        self.state.read().expect("lock").digest
    }

    /// Signs every version from now on with `signer` (snapshots are signed
    /// as they are built; logged deltas keep the key they were signed with).
    pub fn set_signer(&self, signer: Option<Signer32>) {
        self.inner.lock().expect("lock").signer = signer;
        self.forget_snapshot();
    }

    /// Drops the cached snapshot (its signature or lineage move changed).
    pub(crate) fn forget_snapshot(&self) {
        self.snapshot_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Tells `sink` of every version from now on.
    pub fn on_commit(&self, sink: Arc<dyn OnCommit>) {
        let _inner = self.inner.lock().expect("lock");
        self.sinks.lock().expect("lock").push(sink);
    }

    /// Counts an agent's open streams while the guard lives.
    pub fn connect(self: &Arc<Self>, agent_id: &str) -> ConnectedGuard {
        *self
            .connected
            .lock()
            .expect("lock")
            .entry(agent_id.to_string())
            .or_default() += 1;
        ConnectedGuard {
            coord: self.clone(),
            agent_id: agent_id.to_string(),
        }
    }
}

pub struct ConnectedGuard {
    coord: Arc<Coordinator>,
    agent_id: String,
}

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = self.coord.connected.lock() {
            if let Some(n) = c.get_mut(&self.agent_id) {
                *n = n.saturating_sub(1);
            }
        }
    }
}
