//! Several replicas on one store: the write lock every version is made
//! under, catching up with versions other replicas made, the thread that
//! listens for them, and the lease for once-only work. With a store this
//! process alone writes (SQLite) each of these is a no-op.

use std::ops::{Deref, DerefMut};
use std::sync::{atomic::Ordering, Arc, MutexGuard, Weak};
use std::time::Duration;

use c2wall_model::{wire::identity_from_wire, Record, SetDigest};
use c2wall_proto::v1 as pb;
use prost::Message;

use super::{now, protected_of, Coordinator, Inner};
use crate::error::CoordError;
use crate::state::{Prepared, State};
use crate::store::Watch;

/// The writer's lock, with the store's write lock when replicas share it:
/// held for a whole change, released (both) when dropped.
pub(crate) struct Writer<'a> {
    inner: MutexGuard<'a, Inner>,
    shared: bool,
}

impl Deref for Writer<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if self.shared {
            if let Err(e) = self.inner.store.unlock_writes() {
                // The lock ends with the connection anyway.
                tracing::warn!(error = %e, "releasing the store's write lock");
            }
        }
    }
}

/// How often a replica looks for other replicas' versions without being
/// told (a notification lost with its connection must not lose a version).
pub const POLL: Duration = Duration::from_secs(1);

impl Coordinator {
    /// Takes the writer's lock for a change that makes a version: with
    /// replicas, also the store's write lock, and the versions other
    /// replicas made are applied first, so the change is prepared against
    /// the latest set and its version follows the latest one.
    pub(crate) fn writer(&self) -> Result<Writer<'_>, CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        match inner.store.lock_writes()? {
            None => Ok(Writer {
                inner,
                shared: false,
            }),
            Some(latest) => {
                let mut w = Writer {
                    inner,
                    shared: true,
                };
                self.catch_up_to(&mut w, latest)?;
                Ok(w)
            }
        }
    }

    /// Applies the versions other replicas made (none with SQLite). Returns
    /// how many.
    pub fn catch_up(&self) -> Result<u64, CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        let Some(latest) = inner.store.latest_version()? else {
            return Ok(0);
        };
        self.catch_up_to(&mut inner, latest)
    }

    /// Brings memory to the store's `latest` version: each version's record
    /// changes and effective delta, checked against its digest, and told to
    /// the fan-out as if made here. A log that no longer reaches back, or a
    /// digest that does not match, reloads the whole set from the store.
    fn catch_up_to(&self, inner: &mut Inner, latest: u64) -> Result<u64, CoordError> {
        let here = self.state.read().expect("lock").version;
        if latest <= here {
            if latest < here {
                tracing::error!(
                    store = latest,
                    memory = here,
                    "the store is behind this replica's memory (restored from a backup?)"
                );
            }
            return Ok(0);
        }
        let log = (
            inner.store.deltas_after(here)?,
            inner.store.changes_after(here)?,
        );
        let (Some(deltas), Some(changes)) = log else {
            self.reload(inner)?;
            return Ok(latest - here);
        };
        // Oldest first, as the deltas are.
        let mut changes = changes.into_iter().rev().peekable();
        let infos = inner.store.history(latest + 1, (latest - here) as u32)?;
        let mut n = 0;
        for delta in deltas {
            let d = pb::Delta::decode(delta.as_slice())
                .map_err(|e| CoordError::Corrupt(format!("stored delta: {e}")))?;
            if d.version > latest {
                break;
            }
            let records = match changes.next_if(|(v, _)| *v == d.version) {
                Some((_, records)) => records,
                None => Vec::new(),
            };
            let info = infos.iter().find(|i| i.version == d.version);
            let applied = {
                let mut state = self.state.write().expect("lock");
                apply_version(
                    &mut state,
                    &d,
                    &records,
                    info.and_then(|i| i.records_digest.as_deref()),
                )
            };
            if let Err(why) = applied {
                tracing::error!(version = d.version, %why, "reloading the set from the store");
                self.reload(inner)?;
                return Ok(latest - here);
            }
            self.latest.store(d.version, Ordering::Relaxed);
            for sink in self.sinks.lock().expect("lock").iter() {
                sink.committed(d.version, &delta);
            }
            n += 1;
        }
        Ok(n)
    }

    /// The whole set again from the store (agents of this replica get a
    /// snapshot when they next subscribe; live streams are told nothing
    /// they could not verify).
    fn reload(&self, inner: &mut Inner) -> Result<(), CoordError> {
        let (records, latest) = inner.store.load()?;
        let version = latest.as_ref().map_or(0, |v| v.version);
        let t = latest.as_ref().map_or_else(now, |v| v.created_at);
        *self.state.write().expect("lock") = State::load(records, version, t);
        self.latest.store(version, Ordering::Relaxed);
        Ok(())
    }

    /// What other replicas may have changed besides versions: the kill
    /// switch, the protected list, the lineage.
    fn refresh(&self) -> Result<(), CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        let modes = inner.store.modes()?;
        self.modes.send_if_modified(|m| {
            let changed = *m != modes;
            *m = modes;
            changed
        });
        inner.guards.protected = protected_of(inner.store.as_ref())?;
        let (lineage, moved) = inner.store.lineage()?;
        if lineage != inner.lineage {
            inner.lineage = lineage;
            inner.moved = moved
                .map(|m| pb::LineageMove::decode(m.as_slice()))
                .transpose()
                .map_err(|e| CoordError::Corrupt(format!("lineage move: {e}")))?;
            drop(inner);
            self.forget_snapshot();
        }
        Ok(())
    }

    /// Whether once-only work (expiry, promotions, feed pulls) runs here:
    /// always with a store this process alone writes; with replicas, where
    /// the store's lease is held.
    pub fn leads(&self) -> bool {
        match &self.lease {
            None => true,
            Some(l) => l.lock().expect("lock").held(),
        }
    }

    /// Follows other replicas' changes on a thread of its own, until the
    /// coordinator is dropped: woken by the store, and every [`POLL`]
    /// regardless.
    pub(crate) fn follow(self: &Arc<Self>, mut watch: Box<dyn Watch>) {
        let me: Weak<Self> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("c2wall-follow".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    let woke = watch.wait(POLL);
                    let Some(coord) = me.upgrade() else { return };
                    let r = woke.and_then(|_| {
                        coord.catch_up()?;
                        coord.refresh()
                    });
                    match r {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(
                                version = coord.latest_version(),
                                "following the store again"
                            );
                        }
                        Ok(()) => {}
                        Err(e) => {
                            if !failing {
                                tracing::error!(error = %e, "following other replicas");
                            }
                            failing = true;
                            drop(coord);
                            std::thread::sleep(POLL);
                        }
                    }
                }
            })
            .expect("spawning the follower thread");
    }
}

/// Applies one version made elsewhere to `state`: its record changes, then
/// its effective delta, whose digest must come out as the delta says.
fn apply_version(
    state: &mut State,
    d: &pb::Delta,
    records: &[crate::store::RecordChange],
    records_digest: Option<&[u8]>,
) -> Result<(), String> {
    if d.previous_version != state.version {
        return Err(format!(
            "delta from version {} onto version {}",
            d.previous_version, state.version
        ));
    }
    let upserts = d
        .upserts
        .iter()
        .map(Record::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let removals = d
        .removals
        .iter()
        .map(identity_from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut digest = state.digest;
    for r in &upserts {
        if let Some(old) = state.effective(&r.identity()) {
            digest.remove(&old.entry);
        }
        digest.add(&r.entry);
    }
    for i in &removals {
        if let Some(old) = state.effective(i) {
            digest.remove(&old.entry);
        }
    }
    if digest.to_bytes() != d.digest {
        return Err(format!("version {}: digest does not match", d.version));
    }
    let records_digest = records_digest
        .and_then(SetDigest::from_bytes)
        .unwrap_or(state.records_digest);
    state.apply_records(records);
    state.apply_effective(
        &Prepared {
            changes: Vec::new(),
            upserts,
            removals,
            digest,
            records_digest,
        },
        d.version,
    );
    Ok(())
}
