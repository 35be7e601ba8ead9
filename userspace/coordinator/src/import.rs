//! Feed imports: a source's complete new set replaces its previous one. The
//! difference (added, changed, gone) becomes one version; records of other
//! sources for the same entries are untouched, so an entry another source
//! still lists stays enforced.

use std::collections::BTreeMap;

use c2wall_model::{Identity, Record};

use crate::core::{now, Coordinator};
use crate::error::CoordError;
use crate::store::{RecordChange, VersionInfo};

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
}

/// The same listing: what agents enforce and what the record says about it.
fn same(a: &Record, b: &Record) -> bool {
    a.entry == b.entry
        && a.category == b.category
        && a.reference == b.reference
        && a.confidence == b.confidence
        && a.valid_until == b.valid_until
}

impl Coordinator {
    /// Replaces `source`'s records with `records` (their `source` is set to
    /// it) as one version, all or nothing.
    pub fn replace_source(
        &self,
        source: &str,
        records: Vec<Record>,
        opts: &ImportOptions,
        actor: &str,
        reason: &str,
    ) -> Result<ImportOutcome, CoordError> {
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
                r.valid_until = Some(r.valid_until.map_or(t + ttl, |u| u.min(t + ttl)));
            }
            if let Some((j, _)) = new.insert(r.identity(), (i, r.clone())) {
                return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                    field: format!("entries[{i}]"),
                    reason: format!("`{}` is also entries[{j}]", r.identity()),
                }));
            }
        }
        let mut inner = self.inner.lock().expect("lock");
        let old: Vec<Record> = inner
            .state
            .records()
            .values()
            .filter(|r| r.source == source)
            .cloned()
            .collect();
        let mut out = ImportOutcome::default();
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
        let prepared = inner.state.prepare(changes, [], t);
        out.version = Some(self.commit(&mut inner, prepared, actor, reason, t)?);
        Ok(out)
    }
}

impl Coordinator {
    /// Records `source` currently has.
    pub fn source_count(&self, source: &str) -> usize {
        let inner = self.inner.lock().expect("lock");
        inner
            .state
            .records()
            .values()
            .filter(|r| r.source == source)
            .count()
    }
}
