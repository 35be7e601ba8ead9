//! The one owner of the synced set: takes the coordinator's messages,
//! verifies them, has the subscriber enforce the result (the agent's kernel,
//! a downstream coordinator's store) and persists it. The set changes only
//! here, and only once it is enforced; everyone else (the agent's reload,
//! status reports) reads it through the same handle.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc, Mutex},
};

use c2wall_model::{sign::Trust, Entry, Mode};
use c2wall_proto::v1::{self as pb, sync_message::Kind};

use super::error::{ApplyError, FileError, SyncError};
use super::fsio::{stage, Staged};
use super::set::{journal_len, EntryChange, Gathered, Pending, SyncedSet};
use super::status::SyncStatus;
use super::value::SetValue;

/// Enforces a verified set (blocking): the whole set after a snapshot, or,
/// after deltas, the set with the entries that changed since the last call.
/// Returns what to report.
pub type ApplyFn<V = Entry> = Arc<
    dyn Fn(&SyncedSet<V>, Option<&[EntryChange<V>]>) -> Result<pb::AgentStatus, ApplyError>
        + Send
        + Sync,
>;

/// The centre's kill switch: the mode to run in (None = the agent's own).
pub type ModeFn = Arc<dyn Fn(Option<Mode>) + Send + Sync>;

/// The synced set, shared by the stream client and the subscriber.
pub type SyncedHandle<V = Entry> = Arc<Mutex<Synced<V>>>;

/// The journal is folded into a fresh snapshot file once it is larger than
/// this many bytes per listed entry (and at least [`JOURNAL_MIN`]).
const JOURNAL_PER_ENTRY: usize = 64;
const JOURNAL_MIN: usize = 1 << 20;

/// Snapshot chunks (decoded as they arrive) and delta parts received so
/// far, until their last one.
struct Parts<V> {
    chunks: Gathered<V>,
    chunk_version: Option<u64>,
    delta: Option<pb::Delta>,
}

impl<V> Default for Parts<V> {
    fn default() -> Self {
        Parts {
            chunks: Gathered::default(),
            chunk_version: None,
            delta: None,
        }
    }
}

pub struct Synced<V = Entry> {
    set: SyncedSet<V>,
    parts: Parts<V>,
    state_file: PathBuf,
    /// Bytes in the persisted journal (see [`SyncedSet::journal`]).
    journal_bytes: usize,
    /// Public keys whose signatures versions must carry (empty: unchecked).
    trust: Trust,
    status: Arc<SyncStatus>,
    apply: ApplyFn<V>,
    on_mode: ModeFn,
}

impl<V: SetValue> Synced<V> {
    /// `set` is what the kernel enforces now (loaded from `state_file` at
    /// start, or empty).
    pub fn new(
        set: SyncedSet<V>,
        state_file: PathBuf,
        trust: Trust,
        status: Arc<SyncStatus>,
        apply: ApplyFn<V>,
        on_mode: ModeFn,
    ) -> SyncedHandle<V> {
        status.applied_version.store(set.version, Ordering::Relaxed);
        Arc::new(Mutex::new(Synced {
            journal_bytes: journal_len(&state_file),
            set,
            parts: Parts::default(),
            state_file,
            trust,
            status,
            apply,
            on_mode,
        }))
    }

    pub fn set(&self) -> &SyncedSet<V> {
        &self.set
    }

    /// Drops partly received snapshots and deltas (their stream ended).
    pub fn forget_parts(&mut self) {
        self.parts = Parts::default();
    }

    /// Takes one batch of messages: every delta verified into the set (or
    /// into a snapshot that arrived earlier in the batch), then one
    /// enforcement and one save. On any error nothing changes. Returns the
    /// report of what is now enforced, if anything changed.
    pub fn take_batch(
        &mut self,
        batch: Vec<pb::SyncMessage>,
    ) -> Result<Option<pb::AgentStatus>, SyncError> {
        let mut fresh: Option<SyncedSet<V>> = None;
        let mut pending = Pending::default();
        for m in batch {
            if let Err(e) = self.take(m, &mut fresh, &mut pending) {
                self.set.rollback(pending);
                return Err(e);
            }
        }
        let report = if let Some(set) = fresh {
            self.set.rollback(pending);
            // The file is encoded and written (fsynced, beside the saved
            // one) on another core while the kernel is written; it takes the
            // saved one's place only once enforced (the saved list never
            // runs ahead of the kernel's), and is removed if enforcing fails.
            let (apply, path) = (&mut self.apply, &self.state_file);
            let (applied, staged) = std::thread::scope(|s| {
                let staging = s.spawn(|| stage(path, &set.encode()));
                let applied = apply(&set, None);
                (applied, staging.join().expect("the saving thread panicked"))
            });
            let report = applied.map_err(SyncError::Apply)?;
            self.set = set;
            self.persist(None, Some(staged));
            report
        } else if !pending.is_empty() {
            let changes = self.set.changes(&pending);
            match (self.apply)(&self.set, Some(&changes)) {
                Ok(r) => {
                    self.persist(Some(&pending), None);
                    r
                }
                Err(e) => {
                    self.set.rollback(pending);
                    return Err(SyncError::Apply(e));
                }
            }
        } else {
            return Ok(None);
        };
        self.status.applied(self.set.version);
        let mut report = self.stamp(report);
        // Made before the version counted as applied: say it as it is now.
        report.sync_error = self.status.last_error.lock().expect("lock").clone();
        Ok(Some(report))
    }

    /// `status` with the set's version, digest and lineage.
    pub fn stamp(&self, mut status: pb::AgentStatus) -> pb::AgentStatus {
        status.applied_version = self.set.version;
        status.digest = self.set.digest.to_bytes();
        status.lineage = self.set.lineage.clone();
        status
    }

    /// Takes one message: deltas go into the set in place (verified, undo in
    /// `pending`), or into `fresh` if a snapshot arrived earlier in the batch.
    /// Snapshot chunks and delta parts are gathered until their last one.
    fn take(
        &mut self,
        m: pb::SyncMessage,
        fresh: &mut Option<SyncedSet<V>>,
        pending: &mut Pending<V>,
    ) -> Result<(), SyncError> {
        match m.kind {
            Some(Kind::Heartbeat(h)) => self.status.saw_latest(h.latest_version),
            Some(Kind::Control(c)) => match Mode::from_wire("mode", &c.mode) {
                Ok(mode) => (self.on_mode)(mode),
                Err(e) => tracing::error!(error = %e, "ignoring the centre's mode"),
            },
            Some(Kind::Snapshot(c)) => {
                let parts = &mut self.parts;
                if parts.chunk_version.is_some_and(|v| v != c.version)
                    || (parts.chunk_version.is_none() && c.seq != 0)
                {
                    return Err(SyncError::Chunk {
                        version: c.version,
                        seq: c.seq,
                    });
                }
                parts.chunk_version = Some(c.version);
                parts.chunks.push(&c.entries)?;
                if c.last {
                    let next = SyncedSet::from_gathered(
                        &c.lineage,
                        c.version,
                        &c.digest,
                        std::mem::take(&mut parts.chunks),
                        &c.signature,
                        &self.trust,
                    )?;
                    // Never backwards, never to another lineage unasked.
                    self.set.may_follow(&next, c.moved.as_ref(), &self.trust)?;
                    *fresh = Some(next);
                    self.parts.chunk_version = None;
                    self.status.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Kind::Delta(d)) => {
                let d = match self.parts.delta.take() {
                    None => d,
                    Some(mut acc) => {
                        if acc.version != d.version {
                            return Err(SyncError::Chunk {
                                version: d.version,
                                seq: 0,
                            });
                        }
                        acc.upserts.extend(d.upserts);
                        acc.removals.extend(d.removals);
                        acc.more = d.more;
                        acc
                    }
                };
                if d.more {
                    self.parts.delta = Some(d);
                    return Ok(());
                }
                match fresh {
                    Some(f) => f.apply_delta(&d, &mut Pending::default(), &self.trust)?,
                    None => self.set.apply_delta(&d, pending, &self.trust)?,
                }
                self.status.deltas.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        Ok(())
    }

    /// Saves what the kernel now enforces: the deltas just applied go to
    /// the journal (`pending`), a snapshot (None) or a large journal to a
    /// fresh snapshot file. The kernel is the truth: when saving fails the
    /// list stays enforced, the saved one is marked stale (metric, alert),
    /// and the next change retries with a full save (a journal with a gap
    /// would be useless). A restart never re-applies the stale list over
    /// the kernel's newer one (see the daemon's adoption). `staged`: the
    /// whole set's file, when it was written already.
    fn persist(&mut self, pending: Option<&Pending<V>>, staged: Option<Result<Staged, FileError>>) {
        let stale = self.status.disk_stale.load(Ordering::Relaxed);
        let limit = (self.set.entries.len() * JOURNAL_PER_ENTRY).max(JOURNAL_MIN);
        let saved = match pending {
            Some(p) if !stale => SyncedSet::journal(&self.state_file, p).and_then(|n| {
                self.journal_bytes += n;
                if self.journal_bytes > limit {
                    self.set.save(&self.state_file)?;
                    self.journal_bytes = 0;
                }
                Ok(())
            }),
            _ => match staged {
                Some(staged) => {
                    staged.and_then(|st| SyncedSet::<V>::save_staged(&self.state_file, st))
                }
                None => self.set.save(&self.state_file),
            }
            .map(|()| self.journal_bytes = 0),
        };
        match saved {
            Ok(()) => {
                if stale {
                    tracing::info!(
                        version = self.set.version,
                        "the saved list is current again"
                    );
                }
                self.status.disk_stale.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.status.disk_stale.store(true, Ordering::Relaxed);
                self.status.persist_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(version = self.set.version, error = %e,
                    "the kernel enforces this version but saving it failed: the saved list is \
                     stale until a save succeeds (retried at the next change)");
            }
        }
    }
}

#[cfg(test)]
mod tests;
