//! Feed imports: a source's complete new set replaces its previous one. The
//! difference (added, changed, gone) becomes one version; records of other
//! sources for the same entries are untouched, so an entry another source
//! still lists stays enforced.

use std::collections::BTreeMap;

use c2wall_model::{Identity, Record};

use c2wall_proto::v1 as pb;
use prost::Message;

use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;
use crate::store::{PendingChange, RecordChange, VersionInfo};

/// The source of a held import, read without decoding its entries.
#[derive(Clone, PartialEq, prost::Message)]
struct HeldSource {
    #[prost(string, tag = "1")]
    source: String,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Entries are valid this long after the import that lists them; a later
    /// import renews them once less than half is left (so a steady feed
    /// does not rewrite every record on every pull), and a feed that stops
    /// being pulled ages out.
    pub ttl: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// None when the import changed nothing (no version is made).
    pub version: Option<VersionInfo>,
    pub added: usize,
    pub updated: usize,
    pub withdrawn: usize,
    pub unchanged: usize,
    /// Entries the guards refused (left out), with why for the first few.
    pub refused: usize,
    pub refusals: Vec<String>,
    /// Every entry the guards refused, and why (a follower's vetoes).
    pub refused_entries: Vec<(Identity, String)>,
    /// Set when the change breaker held the import (nothing applied).
    pub held: Option<u64>,
}

/// The same listing: what agents enforce and what the record says about it.
fn same(a: &Record, b: &Record) -> bool {
    a.entry == b.entry
        && a.category == b.category
        && a.reference == b.reference
        && a.confidence == b.confidence
        && a.valid_until == b.valid_until
        && a.chain == b.chain
}

impl Coordinator {
    /// Replaces `source`'s records with `records` (their `source` is set to
    /// it) as one version, all or nothing. Entries the guards refuse are left
    /// out and reported; an import the change breaker trips is held for an
    /// admin (an earlier held import of the same source is superseded).
    pub fn replace_source(
        &self,
        source: &str,
        records: Vec<Record>,
        opts: &ImportOptions,
        origin: &Origin,
        reason: &str,
    ) -> Result<ImportOutcome, CoordError> {
        self.replace_inner(source, records, None, opts, origin, reason, false)
    }

    /// As [`Coordinator::replace_source`] for the identities in `scope`
    /// only: `records` are the source's new records among them (an identity
    /// of `scope` without one is withdrawn); the source's other records are
    /// untouched. The cost follows the change, not the source's size (a
    /// followed upstream's delta).
    pub fn replace_part(
        &self,
        source: &str,
        scope: &std::collections::BTreeSet<Identity>,
        records: Vec<Record>,
        origin: &Origin,
        reason: &str,
    ) -> Result<ImportOutcome, CoordError> {
        self.replace_inner(
            source,
            records,
            Some(scope),
            &ImportOptions::default(),
            origin,
            reason,
            false,
        )
    }

    /// An admin's confirmation of a held import: no breaker.
    pub(crate) fn replace_source_confirmed(
        &self,
        source: &str,
        records: Vec<Record>,
        opts: &ImportOptions,
        origin: &Origin,
        reason: &str,
    ) -> Result<ImportOutcome, CoordError> {
        self.replace_inner(source, records, None, opts, origin, reason, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_inner(
        &self,
        source: &str,
        records: Vec<Record>,
        scope: Option<&std::collections::BTreeSet<Identity>>,
        opts: &ImportOptions,
        origin: &Origin,
        reason: &str,
        confirmed: bool,
    ) -> Result<ImportOutcome, CoordError> {
        let actor = origin.actor.as_str();
        if source.is_empty() {
            return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                field: "source".into(),
                reason: "missing: an import replaces one source's records".into(),
            }));
        }
        let t = now();
        let mut new: BTreeMap<Identity, (usize, Record)> = BTreeMap::new();
        for (i, mut r) in records.into_iter().enumerate() {
            r.source = source.to_string();
            r.created_by = actor.to_string();
            r.created_at = t;
            if r.valid_from == 0 {
                r.valid_from = t;
            }
            if let Some(ttl) = opts.ttl {
                // Bounded at the API; saturating all the same, so that no
                // TTL can wrap into the past.
                let end = t.saturating_add(ttl).min(c2wall_model::limits::MAX_TIME);
                r.valid_until = Some(r.valid_until.map_or(end, |u| u.min(end)));
            }
            if let Some((j, _)) = new.insert(r.identity(), (i, r.clone())) {
                return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                    field: format!("entries[{i}]"),
                    reason: format!("`{}` is also entries[{j}]", r.identity()),
                }));
            }
        }
        let mut inner = self.writer()?;
        let state = self.state.read().expect("lock");
        let mut refused = Vec::new();
        let mut refused_entries = Vec::new();
        new.retain(
            |id, (i, r)| match inner.guards.refuse(&r.entry.target, source) {
                Some(why) => {
                    refused.push(format!("entries[{i}]: {why}"));
                    refused_entries.push((id.clone(), why));
                    false
                }
                None => true,
            },
        );
        let old: Vec<Record> = match scope {
            Some(ids) => {
                if let Some((_, (i, r))) = new.iter().find(|(id, _)| !ids.contains(id)) {
                    return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                        field: format!("entries[{i}]"),
                        reason: format!("`{}` is outside the part being replaced", r.identity()),
                    }));
                }
                ids.iter()
                    .filter_map(|id| state.record(id, source))
                    .collect()
            }
            None => state
                .all()
                .filter(|r| r.source() == source)
                .map(|r| r.record())
                .collect(),
        };
        let mut out = ImportOutcome {
            refused: refused.len(),
            refusals: refused.into_iter().take(10).collect(),
            refused_entries,
            ..Default::default()
        };
        let mut changes = Vec::new();
        for before in old {
            match new.remove(&before.identity()) {
                None => {
                    out.withdrawn += 1;
                    changes.push(RecordChange::Delete { before });
                }
                Some((_, mut after)) => {
                    // Renewing early would rewrite every record on every pull.
                    if let (Some(ttl), Some(u)) = (opts.ttl, before.valid_until) {
                        if u - t > ttl / 2 {
                            after.valid_until = before.valid_until;
                        }
                    }
                    if same(&before, &after) {
                        out.unchanged += 1;
                    } else {
                        after.valid_from = before.valid_from.min(t);
                        out.updated += 1;
                        changes.push(RecordChange::Put {
                            before: Some(before),
                            after,
                        });
                    }
                }
            }
        }
        for (_, (_, after)) in new {
            out.added += 1;
            changes.push(RecordChange::Put {
                before: None,
                after,
            });
        }
        if changes.is_empty() {
            return Ok(out);
        }
        let size = state.listed();
        if !confirmed && inner.guards.breaks(out.added + out.withdrawn, size) {
            let summary = format!(
                "import of {source}: +{} -{} entries on a list of {size} ({:.0}%)",
                out.added,
                out.withdrawn,
                (out.added + out.withdrawn) as f64 * 100.0 / size.max(1) as f64
            );
            // The whole set as it would be imported: the changed records and
            // the source's unchanged ones.
            let touched: std::collections::HashSet<Identity> = changes
                .iter()
                .map(|c| match c {
                    RecordChange::Put { after, .. } => after.identity(),
                    RecordChange::Delete { before } => before.identity(),
                })
                .collect();
            // Encoded entry by entry (an ImportChunk with `entries` field 3
            // repeated): no second copy of a large set in memory.
            let mut request = pb::ImportChunk {
                source: source.to_string(),
                reason: reason.to_string(),
                entries: Vec::new(),
                ttl_seconds: opts.ttl.unwrap_or(0),
                end: true,
            }
            .encode_to_vec();
            let puts = changes.iter().filter_map(|c| match c {
                RecordChange::Put { after, .. } => Some(after),
                RecordChange::Delete { .. } => None,
            });
            let kept = state
                .all()
                .filter(|r| r.source() == source && !touched.contains(r.identity()))
                .map(|r| r.record());
            for r in puts.cloned().chain(kept) {
                prost::encoding::message::encode(3, &pb::Entry::from(&r), &mut request);
            }
            for p in inner.store.pending(None)? {
                let same_source = p.kind == c2wall_model::HeldKind::Import
                    && HeldSource::decode(p.request.as_slice()).is_ok_and(|c| c.source == source);
                if same_source {
                    let audit = origin.audit(t, "supersede", &format!("pending #{}", p.id), reason);
                    inner
                        .store
                        .close_pending(p.id, c2wall_model::HeldState::Superseded, &audit)?;
                }
            }
            let held = PendingChange {
                created_at: t,
                actor: actor.to_string(),
                reason: reason.to_string(),
                kind: c2wall_model::HeldKind::Import,
                request,
                summary: summary.clone(),
                id: 0,
                state: c2wall_model::HeldState::Open,
            };
            out.held = Some(
                inner
                    .store
                    .hold(&held, &origin.audit(t, "hold", &summary, reason))?,
            );
            return Ok(out);
        }
        let prepared = state.prepare(changes, [], t);
        drop(state);
        let action = if confirmed { "confirm" } else { "import" };
        out.version = Some(self.commit(&mut inner, prepared, origin, action, reason, t)?);
        Ok(out)
    }
}

impl Coordinator {
    /// The records of `source`.
    pub fn source_records(&self, source: &str) -> Vec<Record> {
        self.state
            .read()
            .expect("lock")
            .all()
            .filter(|r| r.source() == source)
            .map(|r| r.record())
            .collect()
    }

    /// `source`'s record of `id`, if it has one.
    pub fn source_record(&self, id: &Identity, source: &str) -> Option<Record> {
        self.state.read().expect("lock").record(id, source)
    }

    /// Records `source` currently has.
    pub fn source_count(&self, source: &str) -> usize {
        self.state
            .read()
            .expect("lock")
            .all()
            .filter(|r| r.source() == source)
            .count()
    }
}
