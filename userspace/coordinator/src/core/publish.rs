//! Changes that make versions: publish, commit, rollback, compaction.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use c2wall_model::{Identity, Record};
use c2wall_proto::v1 as pb;
use prost::Message;

use super::{now, Coordinator, Inner, Origin, Published, Withdrawal};
use crate::error::CoordError;
use crate::state::Prepared;
use crate::store::{Commit, PendingChange, RecordChange, VersionInfo};

impl Coordinator {
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
        let mut inner = self.writer()?;
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
            if let Some(why) = inner.guards.refuse(&r.entry.target, &r.source) {
                return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                    field: format!(
                        "upserts[{i}].key.{}",
                        if r.entry.target.domain().is_some() {
                            "domain"
                        } else {
                            "prefix"
                        }
                    ),
                    reason: format!("refused: {why}"),
                }));
            }
            r.created_by = actor.to_string();
            r.created_at = t;
            if r.valid_from == 0 {
                r.valid_from = t;
            }
            let before = state.record(&r.identity(), &r.source);
            changes.push(RecordChange::Put { before, after: r });
        }
        for (i, w) in withdrawals.iter().enumerate() {
            // Upstream records change only through their follower: a
            // withdrawal here would come back with the upstream's next
            // version. Keeping one out is a protected range's job.
            let (upstream, matching): (Vec<Record>, Vec<Record>) = state
                .records_of(&w.identity)
                .into_iter()
                .filter(|r| w.source.as_deref().is_none_or(|s| s == r.source))
                .partition(|r| r.source.starts_with(c2wall_model::UPSTREAM_SOURCE_PREFIX));
            if matching.is_empty() && !upstream.is_empty() {
                return Err(CoordError::Precondition(format!(
                    "withdrawals[{i}]: `{}` is listed only by {}, which this coordinator follows: \
                     its entries change upstream; to keep it out here, protect it \
                     (`c2wall protect add {}`)",
                    w.identity,
                    upstream[0].source,
                    protect_arg(&w.identity.target)
                )));
            }
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
            .filter(|r| !state.is_listed(&r.identity()))
            .count();
        let removed = prepared.removals.len();
        let size = state.listed();
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
                    expedite: false,
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
        let mut inner = self.writer()?;
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
            let have = state.record(&key.0, &key.1);
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

    /// Undoes one version's own changes as a new version, leaving later
    /// versions' changes alone: a record that version put goes back to what
    /// it was before (unless a later version changed it again), a record it
    /// deleted comes back (unless one was put since). None when nothing is
    /// left to undo.
    pub fn revert(
        &self,
        version: u64,
        origin: &Origin,
        reason: &str,
    ) -> Result<Option<VersionInfo>, CoordError> {
        let t = now();
        let mut inner = self.writer()?;
        let state = self.state.read().expect("lock");
        let log = inner
            .store
            .changes_after(version.saturating_sub(1))?
            .ok_or_else(|| {
                CoordError::Precondition(format!(
                    "version {version} is older than the kept log (compacted)"
                ))
            })?;
        let mut changes = Vec::new();
        for ch in log
            .iter()
            .filter(|(v, _)| *v == version)
            .flat_map(|(_, c)| c)
        {
            match ch {
                RecordChange::Put { before, after } => {
                    let have = state.record(&after.identity(), &after.source);
                    if have.as_ref() != Some(after) {
                        continue;
                    }
                    changes.push(match before {
                        Some(b) => RecordChange::Put {
                            before: have,
                            after: b.clone(),
                        },
                        None => RecordChange::Delete {
                            before: after.clone(),
                        },
                    });
                }
                RecordChange::Delete { before } => {
                    if state.record(&before.identity(), &before.source).is_none() {
                        changes.push(RecordChange::Put {
                            before: None,
                            after: before.clone(),
                        });
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(None);
        }
        let p = state.prepare(changes, [], t);
        drop(state);
        let reason = format!("revert version {version}: {reason}");
        self.commit(&mut inner, p, origin, "rollback", &reason, t)
            .map(Some)
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
}

/// The `c2wall protect add` arguments that keep `t` out.
fn protect_arg(t: &c2wall_model::Target) -> String {
    match t {
        c2wall_model::Target::Prefix(p) => p.to_string(),
        c2wall_model::Target::Domain(d) => format!("--domain {}", d.name),
    }
}
