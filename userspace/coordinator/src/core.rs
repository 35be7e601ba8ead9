//! The coordinator's operations, independent of gRPC: publish, rollback,
//! expiry, compaction, subscription plans, agent status.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use c2wall_model::{Identity, Prefix, Record, SetDigest};
use c2wall_proto::v1 as pb;
use prost::Message;

pub use crate::origin::{now, Origin};

use crate::error::CoordError;
use crate::guards::Guards;
use crate::state::{Prepared, State};
use crate::store::{Commit, PendingChange, RecordChange, Store, VersionInfo};
use c2wall_model::sign::Signer32;

/// The protected allowlist as stored.
pub(crate) fn protected_of(
    store: &dyn Store,
) -> Result<std::collections::BTreeMap<Prefix, String>, CoordError> {
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
        Ok(Arc::new(Coordinator {
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
            sinks: Mutex::new(Vec::new()),
            live_buffer,
            snapshot_epoch: AtomicU64::new(0),
            connected: Mutex::new(HashMap::new()),
        }))
    }

    pub fn latest_version(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    pub fn digest(&self) -> SetDigest {
        self.state.read().expect("lock").digest
    }

    /// One batch of upserts and withdrawals as one version, all or nothing.
    /// Entries the guards refuse fail the whole batch, naming the entry; a
    /// batch the breaker trips is held (unless `confirmed`: an admin's
    /// confirmation of a held change).
    pub fn publish(
        &self,
        upserts: Vec<Record>,
        withdrawals: Vec<Withdrawal>,
        origin: &Origin,
        reason: &str,
        confirmed: bool,
    ) -> Result<Published, CoordError> {
        let t = now();
        let actor = origin.actor.as_str();
        let mut inner = self.inner.lock().expect("lock");
        let state = self.state.read().expect("lock");
        let mut changes = Vec::new();
        let mut seen: HashMap<(Identity, String), usize> = HashMap::new();
        for (i, mut r) in upserts.into_iter().enumerate() {
            if r.source.is_empty() {
                r.source = format!("operator:{actor}");
            }
            if let Some(j) = seen.insert((r.identity(), r.source.clone()), i) {
                return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                    field: format!("upserts[{i}]"),
                    reason: format!("`{}` from {} is also upserts[{j}]", r.identity(), r.source),
                }));
            }
            if let Some(why) = inner.guards.refuse(&r.entry.prefix, &r.source) {
                return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                    field: format!("upserts[{i}].key.prefix"),
                    reason: format!("refused: {why}"),
                }));
            }
            r.created_by = actor.to_string();
            r.created_at = t;
            if r.valid_from == 0 {
                r.valid_from = t;
            }
            let before = state
                .records()
                .get(&(r.identity(), r.source.clone()))
                .cloned();
            changes.push(RecordChange::Put { before, after: r });
        }
        for (i, w) in withdrawals.iter().enumerate() {
            let matching: Vec<Record> = state
                .records_of(&w.identity)
                .into_iter()
                .filter(|r| w.source.as_deref().is_none_or(|s| s == r.source))
                .cloned()
                .collect();
            if matching.is_empty() {
                return Err(CoordError::NotFound(format!(
                    "withdrawals[{i}]: `{}` is not listed{}",
                    w.identity,
                    w.source
                        .as_deref()
                        .map(|s| format!(" by {s}"))
                        .unwrap_or_default()
                )));
            }
            for r in matching {
                if seen.contains_key(&(r.identity(), r.source.clone())) {
                    return Err(CoordError::Precondition(format!(
                        "withdrawals[{i}]: `{}` from {} is also upserted in this batch",
                        r.identity(),
                        r.source
                    )));
                }
                changes.push(RecordChange::Delete { before: r });
            }
        }
        let prepared = state.prepare(changes, [], t);
        let added = prepared
            .upserts
            .iter()
            .filter(|r| !state.effective.contains_key(&r.identity()))
            .count();
        let removed = prepared.removals.len();
        let size = state.effective.len();
        drop(state);
        if !confirmed && inner.guards.breaks(added + removed, size) {
            let summary = format!(
                "+{added} -{removed} entries on a list of {size} ({:.0}%)",
                (added + removed) as f64 * 100.0 / size.max(1) as f64
            );
            let held = PendingChange {
                created_at: t,
                actor: actor.to_string(),
                reason: reason.to_string(),
                kind: c2wall_model::HeldKind::Publish,
                // What confirming re-publishes: the batch as prepared.
                request: pb::PublishRequest {
                    upserts: prepared
                        .changes
                        .iter()
                        .filter_map(|c| match c {
                            RecordChange::Put { after, .. } => Some(pb::Entry::from(after)),
                            RecordChange::Delete { .. } => None,
                        })
                        .collect(),
                    withdrawals: withdrawals
                        .iter()
                        .map(|w| pb::Withdrawal {
                            key: Some(c2wall_model::wire::identity_to_wire(&w.identity)),
                            source: w.source.clone().unwrap_or_default(),
                        })
                        .collect(),
                    reason: reason.to_string(),
                }
                .encode_to_vec(),
                summary: summary.clone(),
                id: 0,
                state: c2wall_model::HeldState::Open,
            };
            let id = inner
                .store
                .hold(&held, &origin.audit(t, "hold", &summary, reason))?;
            return Ok(Published::Held(PendingChange { id, ..held }));
        }
        let action = if confirmed { "confirm" } else { "publish" };
        self.commit(&mut inner, prepared, origin, action, reason, t)
            .map(Published::Version)
    }

    pub(crate) fn commit(
        &self,
        inner: &mut Inner,
        p: Prepared,
        origin: &Origin,
        action: &str,
        reason: &str,
        t: i64,
    ) -> Result<VersionInfo, CoordError> {
        let actor = origin.actor.as_str();
        let state = self.state.read().expect("lock");
        let version = state.version + 1;
        let mut delta = state.delta(&p, version);
        drop(state);
        delta.lineage = inner.lineage.clone();
        if let Some(signer) = &inner.signer {
            delta.signature = signer.sign(&inner.lineage, version, &delta.digest);
        }
        let info = VersionInfo {
            version,
            digest: p.digest.to_bytes(),
            created_at: t,
            actor: actor.to_string(),
            reason: reason.to_string(),
            upserts: p.upserts.len() as u32,
            removals: p.removals.len() as u32,
            records_digest: Some(p.records_digest.to_bytes()),
        };
        let encoded = delta.encode_to_vec();
        let Prepared {
            changes,
            upserts,
            removals,
            digest,
            records_digest,
        } = p;
        let detail = format!(
            "version {version}: {} upserts, {} removals",
            info.upserts, info.removals
        );
        let commit = Commit {
            info: info.clone(),
            changes,
            delta: encoded,
            audit: origin.audit(t, action, &detail, reason),
        };
        // Durable first; memory follows only once the version is on disk.
        inner.store.append(&commit)?;
        let mark = crate::highwater::Mark {
            lineage: inner.lineage.clone(),
            version,
            digest: info.digest.clone(),
        };
        if let Some(hw) = inner.highwater.as_mut() {
            // The version is committed: a mark that lags only weakens the
            // next start's check, so it is reported, not fatal.
            if let Err(e) = hw.write(&mark) {
                tracing::error!(error = %e, version, "high-water mark not updated");
            }
        }
        // Readers wait only for the in-memory apply, not the store write.
        let mut state = self.state.write().expect("lock");
        state.apply_records(&commit.changes);
        let effective = Prepared {
            changes: Vec::new(),
            upserts,
            removals,
            digest,
            records_digest,
        };
        state.apply_effective(&effective, version);
        drop(state);
        self.latest.store(version, Ordering::Relaxed);
        // Still under the writer's lock: see OnCommit.
        for sink in self.sinks.lock().expect("lock").iter() {
            sink.committed(version, &commit.delta);
        }
        Ok(info)
    }

    /// Makes the records equal to what they were at `version`, as a new version.
    pub fn rollback(
        &self,
        version: u64,
        origin: &Origin,
        reason: &str,
    ) -> Result<VersionInfo, CoordError> {
        let t = now();
        let mut inner = self.inner.lock().expect("lock");
        let state = self.state.read().expect("lock");
        if version >= state.version {
            return Err(CoordError::Precondition(format!(
                "version {version} is not before the latest version {}",
                state.version
            )));
        }
        let log = inner.store.changes_after(version)?.ok_or_else(|| {
            CoordError::Precondition(format!(
                "version {version} is older than the kept log (compacted); choose a later version"
            ))
        })?;
        // Undo newest first; the target record of each key is what it was before
        // the oldest change after `version`.
        let mut target: HashMap<(Identity, String), Option<Record>> = HashMap::new();
        for (_, changes) in &log {
            for ch in changes.iter().rev() {
                let (key, before) = match ch {
                    RecordChange::Put { before, after } => {
                        ((after.identity(), after.source.clone()), before.clone())
                    }
                    RecordChange::Delete { before } => (
                        (before.identity(), before.source.clone()),
                        Some(before.clone()),
                    ),
                };
                target.insert(key, before);
            }
        }
        let mut changes = Vec::new();
        for (key, want) in target {
            let have = state.records().get(&key).cloned();
            match (have, want) {
                (Some(h), None) => changes.push(RecordChange::Delete { before: h }),
                (h, Some(w)) if h.as_ref() != Some(&w) => changes.push(RecordChange::Put {
                    before: h,
                    after: w,
                }),
                _ => {}
            }
        }
        let p = state.prepare(changes, [], t);
        drop(state);
        let reason = if reason.is_empty() {
            format!("rollback to version {version}")
        } else {
            format!("rollback to version {version}: {reason}")
        };
        self.commit(&mut inner, p, origin, "rollback", &reason, t)
    }

    /// Keeps the log of the last `keep` versions.
    pub fn compact(&self, keep: u64) -> Result<(), CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        let from = self
            .state
            .read()
            .expect("lock")
            .version
            .saturating_sub(keep)
            + 1;
        inner.store.compact(from)
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
