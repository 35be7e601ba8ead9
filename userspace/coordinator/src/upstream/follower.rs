//! One upstream followed: the shared sync client verifies and persists the
//! upstream's set (`c2wall-subscriber`, the same code an edge agent runs);
//! this side turns the verified set into the records of source
//! `upstream:NAME` through the local policy and the guards, as one import.
//!
//! The sync client never writes the store itself: it notes which entries
//! changed and wakes the worker, which writes on the replica that leads
//! (with PostgreSQL replicas every replica follows and keeps the set, one
//! writes). A delta rewrites only the entries it touched; a snapshot, a
//! changed protected list, the first write after start or a failed write
//! rewrites the whole set. The worker also rewrites
//! when the protected list changes, so a protection vetoes an upstream entry
//! within a second and its removal restores it. Until a verified set exists
//! (none saved, upstream never reached) nothing is written: the records the
//! store already holds stay enforced (fail-static across restarts).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use c2wall_model::{Identity, Prefix, Record};
use c2wall_proto::v1 as pb;
use c2wall_subscriber::{SyncStatus, SyncedHandle};

use super::config::Upstream;
use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;
use crate::import::ImportOptions;

/// An upstream entry this coordinator does not enforce, and why.
#[derive(Clone, Debug)]
pub struct Veto {
    pub record: Record,
    pub reason: String,
}

/// What the worker last made of the upstream's set.
#[derive(Default)]
pub struct View {
    /// The upstream version last written (0: none yet).
    pub taken_version: u64,
    /// A fingerprint of the protected list it was written under.
    protected: u64,
    /// The last write failed: try again at the next tick.
    failed: bool,
    pub entries: usize,
    pub vetoed: BTreeMap<Identity, Veto>,
    /// A change the breaker held for an admin (`c2wall pending`).
    pub held: Option<u64>,
    pub last_error: String,
    /// Unix seconds of the last write that succeeded.
    pub last_write: i64,
}

/// What changed upstream since the worker last wrote.
#[derive(Debug, Default)]
pub enum Touched {
    #[default]
    Nothing,
    Some(BTreeSet<Identity>),
    /// A snapshot: everything may have changed.
    All,
}

impl Touched {
    /// Notes a batch the sync client verified (None: a snapshot).
    pub fn note(&mut self, changes: Option<&[c2wall_subscriber::EntryChange<Record>]>) {
        match (changes, &mut *self) {
            (_, Touched::All) => {}
            (None, t) => *t = Touched::All,
            (Some(ch), Touched::Some(ids)) => ids.extend(ch.iter().map(|(id, _)| id.clone())),
            (Some(ch), t) => *t = Touched::Some(ch.iter().map(|(id, _)| id.clone()).collect()),
        }
    }
}

pub struct Follower {
    pub upstream: Upstream,
    /// `upstream:NAME`.
    pub source: String,
    pub status: Arc<SyncStatus>,
    pub synced: SyncedHandle<Record>,
    pub(super) wake: tokio::sync::Notify,
    pub view: Mutex<View>,
    pub(super) touched: Mutex<Touched>,
}

impl Follower {
    /// The status this coordinator reports to its upstream.
    pub fn report(&self) -> pb::AgentStatus {
        let v = self.view.lock().expect("lock");
        pb::AgentStatus {
            kind: pb::SubscriberKind::Downstream as i32,
            entries: v.entries as u64,
            vetoed: v.vetoed.len() as u64,
            mode: "enforce".into(),
            sync_error: v.last_error.clone(),
            ..Default::default()
        }
    }

    /// Vetoed upstream entries whose prefix contains `p` (for explain).
    pub fn vetoes_covering(&self, p: &Prefix) -> Vec<Veto> {
        self.vetoes_where(|t| t.prefix().is_some_and(|q| q.contains(p)))
    }

    /// Vetoed upstream domain entries covering `name` (for explain).
    pub fn vetoes_covering_name(&self, name: &c2wall_model::DomainName) -> Vec<Veto> {
        self.vetoes_where(|t| t.domain().is_some_and(|d| d.covers(name)))
    }

    fn vetoes_where(&self, keep: impl Fn(&c2wall_model::Target) -> bool) -> Vec<Veto> {
        self.view
            .lock()
            .expect("lock")
            .vetoed
            .values()
            .filter(|v| keep(&v.record.entry.target))
            .cloned()
            .collect()
    }

    /// Runs until the task is dropped: on each wake (a verified upstream
    /// version) and each second (the protected list, a failed write, a
    /// lease won), writes what changed.
    pub async fn run(self: Arc<Self>, coord: Arc<Coordinator>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let (me, c) = (self.clone(), coord.clone());
            match tokio::task::spawn_blocking(move || me.step(&c)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(upstream = %self.upstream.name, error = %e,
                        "writing the upstream's entries failed; the previous ones stay, retrying");
                    let mut v = self.view.lock().expect("lock");
                    v.failed = true;
                    v.last_error = e.to_string();
                }
                Err(e) => tracing::error!(error = %e, "upstream worker"),
            }
        }
    }

    /// One pass: writes what changed upstream if this replica leads: the
    /// touched entries after deltas, the whole set when it must.
    fn step(&self, coord: &Coordinator) -> Result<(), CoordError> {
        if !coord.leads() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let protected = fingerprint(&coord.protected());
        let synced = self.synced.lock().expect("lock");
        let set = synced.set();
        let whole = {
            let v = self.view.lock().expect("lock");
            let due = set.version != v.taken_version || protected != v.protected || v.failed;
            if set.version == 0 || !due {
                return Ok(());
            }
            protected != v.protected || v.failed || v.taken_version == 0
        };
        let touched = std::mem::take(&mut *self.touched.lock().expect("lock"));
        let scope = match touched {
            Touched::Some(ids) if !whole => Some(ids),
            _ => None,
        };
        let version = set.version;
        let now = now();
        let taken = match &scope {
            Some(ids) => {
                let existing: HashMap<Identity, Record> = ids
                    .iter()
                    .filter_map(|id| coord.source_record(id, &self.source))
                    .map(|r| (r.identity(), r))
                    .collect();
                let upstream = ids.iter().filter_map(|id| set.entries.get(id));
                self.upstream
                    .policy
                    .take(&self.upstream.name, version, upstream, &existing, now)
            }
            None => {
                let existing: HashMap<Identity, Record> = coord
                    .source_records(&self.source)
                    .into_iter()
                    .map(|r| (r.identity(), r))
                    .collect();
                self.upstream.policy.take(
                    &self.upstream.name,
                    version,
                    set.entries.values(),
                    &existing,
                    now,
                )
            }
        };
        drop(synced);
        let new_vetoes: Vec<(Identity, Veto)> = taken
            .left_out
            .into_iter()
            .map(|(record, why)| {
                let reason = format!("{} (upstream {} policy)", why, self.upstream.name);
                (record.identity(), Veto { record, reason })
            })
            .collect();
        let by_id: HashMap<Identity, Record> = taken
            .records
            .iter()
            .map(|r| (r.identity(), r.clone()))
            .collect();
        let origin = Origin::internal(self.source.clone());
        let reason = format!(
            "upstream {} version {version} ({})",
            self.upstream.name,
            self.upstream.urls.join(", ")
        );
        let o = match &scope {
            Some(ids) => coord.replace_part(&self.source, ids, taken.records, &origin, &reason),
            None => coord.replace_source(
                &self.source,
                taken.records,
                &ImportOptions::default(),
                &origin,
                &reason,
            ),
        };
        // On an error the caller marks the write failed: the next pass writes
        // the whole set, so the touched entries are not lost.
        let o = o?;
        tracing::debug!(
            scoped = scope.is_some(),
            took_ms = started.elapsed().as_millis() as u64,
            "upstream write"
        );
        let mut vetoed: BTreeMap<Identity, Veto> = match &scope {
            // Vetoes of untouched entries stand; the touched ones are decided anew.
            Some(ids) => self
                .view
                .lock()
                .expect("lock")
                .vetoed
                .iter()
                .filter(|(id, _)| !ids.contains(id))
                .map(|(id, v)| (id.clone(), v.clone()))
                .collect(),
            None => BTreeMap::new(),
        };
        vetoed.extend(new_vetoes);
        for (id, why) in o.refused_entries {
            if let Some(record) = by_id.get(&id).cloned() {
                vetoed.insert(
                    id,
                    Veto {
                        record,
                        reason: why,
                    },
                );
            }
        }
        let entries = {
            let before = self.view.lock().expect("lock").entries;
            match (&scope, o.held) {
                // Held: nothing of it applied.
                (_, Some(_)) => before,
                (Some(_), None) => (before + o.added).saturating_sub(o.withdrawn),
                (None, None) => coord.source_count(&self.source),
            }
        };
        let mut v = self.view.lock().expect("lock");
        let newly: Vec<String> = vetoed
            .iter()
            .filter(|(id, _)| !v.vetoed.contains_key(id))
            .map(|(id, w)| format!("{id}: {}", w.reason))
            .collect();
        if !newly.is_empty() {
            let detail = format!(
                "upstream {} version {version}: {} entries kept out here ({}{})",
                self.upstream.name,
                newly.len(),
                newly.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                if newly.len() > 5 { "; ..." } else { "" }
            );
            tracing::warn!(upstream = %self.upstream.name, "{detail}");
            coord.audit_event(&origin, "veto", &detail, &reason)?;
        }
        if let Some(id) = o.held {
            tracing::warn!(upstream = %self.upstream.name, version, pending = id,
                "the change breaker held this upstream change for an admin (c2wall pending)");
        }
        *v = View {
            taken_version: version,
            protected,
            failed: false,
            entries,
            vetoed,
            held: o.held,
            last_error: String::new(),
            last_write: now,
        };
        Ok(())
    }
}

fn fingerprint(protected: &[(c2wall_model::Target, String)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (p, _) in protected {
        p.to_string().hash(&mut h);
    }
    h.finish()
}
