//! The working set in memory: every record, the effective set agents enforce,
//! its digest and version. Changes are prepared against it, persisted, then
//! applied, so memory never runs ahead of the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::{ops::Bound, sync::Arc};

use c2wall_model::{effective, Identity, Record, SetDigest};
use c2wall_proto::v1 as pb;

use crate::store::RecordChange;

mod domains;
mod effective;
mod stored;

pub use stored::RecordRef;
use stored::{Effective, Names, Stored};

/// A record's key as callers name it (list pages resume after one).
pub type RecordKey = (Identity, String);
/// The same key as held: the source shared, not copied per record.
type Key = (Identity, Arc<str>);

/// A record as the records digest covers it: its wire form, every field.
fn record_bytes(r: &Record) -> Vec<u8> {
    use prost::Message;
    pb::Entry::from(r).encode_to_vec()
}

#[derive(Default)]
pub struct State {
    records: BTreeMap<Key, Stored>,
    names: Names,
    /// (valid_until, key) of every record that expires, so the expiry worker
    /// finds what changes in a second without scanning the records.
    until: BTreeSet<(i64, Key)>,
    /// (valid_from, key) of records made to open later than they were made;
    /// any other record was in force from its publish on.
    from: BTreeSet<(i64, Key)>,
    /// (promote_at, key) of monitor records scheduled to become drop.
    promote: BTreeSet<(i64, Key)>,
    effective: BTreeMap<Identity, Effective>,
    pub digest: SetDigest,
    /// Digest of every stored record with all its fields, whatever its
    /// validity: what the store must hold for this version (checked at start,
    /// independent of when the expiry worker last ran).
    pub records_digest: SetDigest,
    pub version: u64,
}

/// A change ready to be persisted and applied.
pub struct Prepared {
    pub changes: Vec<RecordChange>,
    pub upserts: Vec<Record>,
    pub removals: Vec<Identity>,
    pub digest: SetDigest,
    /// The records digest once the changes are applied.
    pub records_digest: SetDigest,
}

impl State {
    pub fn load(records: Vec<Record>, version: u64, now: i64) -> State {
        let mut s = State {
            version,
            ..Default::default()
        };
        for r in &records {
            s.records_digest.add_bytes(&record_bytes(r));
            s.put(r);
        }
        drop(records);
        // The effective set as the version left it: a record still stored
        // past its window is one the expiry worker has not removed yet (it
        // deletes what it expires), so it still counts; its expiry is the
        // worker's next version.
        let mut ids: Vec<Identity> = s.records.keys().map(|(i, _)| i.clone()).collect();
        ids.dedup();
        let mut effective = Vec::with_capacity(ids.len());
        for i in ids {
            let listed = s.records_of(&i).into_iter().filter(|r| r.valid_from <= now);
            if let Some(e) = effective_of_records(listed) {
                s.digest.add(&e.entry);
                effective.push((i, s.effective_of_record(&e)));
            }
        }
        // Built from sorted pairs, the map's nodes are full.
        s.effective = effective.into_iter().collect();
        s
    }

    fn key(&self, ident: &Identity, source: &str) -> Option<Key> {
        self.names.get(source).map(|s| (ident.clone(), s))
    }

    fn effective_of_record(&mut self, r: &Record) -> Effective {
        Effective {
            action: r.entry.action,
            direction: r.entry.direction,
            source: self.names.intern(&r.source),
        }
    }

    /// The effective record of `ident` with `overlay` applied on top of the
    /// stored records (None in the overlay = deleted).
    fn effective_with(
        &self,
        ident: &Identity,
        overlay: &BTreeMap<RecordKey, Option<Record>>,
        now: i64,
    ) -> Option<Record> {
        let changed: Vec<(&str, &Option<Record>)> = overlay
            .range((ident.clone(), String::new())..)
            .take_while(|((i, _), _)| i == ident)
            .map(|((_, source), r)| (source.as_str(), r))
            .collect();
        let base = self
            .refs(Bound::Included((ident.clone(), Arc::from(""))))
            .take_while(|r| r.ident == ident)
            .filter(|r| !changed.iter().any(|(s, _)| *s == r.source()))
            .map(|r| r.record());
        let extra = changed.iter().filter_map(|(_, r)| (*r).clone());
        effective_of_records(base.chain(extra).filter(|r| r.active_at(now)))
    }

    /// Borrowed records in key order from `start`.
    fn refs(&self, start: Bound<Key>) -> impl Iterator<Item = RecordRef<'_>> {
        self.records
            .range((start, Bound::Unbounded))
            .map(|((ident, source), stored)| RecordRef {
                ident,
                source,
                stored,
            })
    }

    /// Every stored record, in key order.
    pub fn all(&self) -> impl Iterator<Item = RecordRef<'_>> {
        self.refs(Bound::Unbounded)
    }

    /// Stored records in key order from `start`.
    pub fn range(&self, start: Bound<RecordKey>) -> impl Iterator<Item = RecordRef<'_>> {
        let arc = |(i, s): RecordKey| (i, Arc::<str>::from(s));
        self.refs(match start {
            Bound::Included(k) => Bound::Included(arc(k)),
            Bound::Excluded(k) => Bound::Excluded(arc(k)),
            Bound::Unbounded => Bound::Unbounded,
        })
    }

    /// Records of one identity (any source).
    pub fn records_of(&self, ident: &Identity) -> Vec<Record> {
        self.refs(Bound::Included((ident.clone(), Arc::from(""))))
            .take_while(|r| r.ident == ident)
            .map(|r| r.record())
            .collect()
    }

    /// One source's record of `ident`.
    pub fn record(&self, ident: &Identity, source: &str) -> Option<Record> {
        let key = self.key(ident, source)?;
        self.records.get(&key).map(|s| s.record(ident, source))
    }

    /// Entries agents enforce.
    pub fn listed(&self) -> usize {
        self.effective.len()
    }

    pub fn is_listed(&self, ident: &Identity) -> bool {
        self.effective.contains_key(ident)
    }

    /// Records by (source, category, action).
    pub fn counts(&self) -> BTreeMap<(String, String, String), usize> {
        let mut by: BTreeMap<(&str, &str, c2wall_model::Action), usize> = BTreeMap::new();
        for r in self.all() {
            *by.entry((r.source(), r.category(), r.action()))
                .or_insert(0) += 1;
        }
        by.into_iter()
            .map(|((s, c, a), n)| ((s.to_string(), c.to_string(), a.to_string()), n))
            .collect()
    }

    /// The effective consequences of record changes (plus identities whose
    /// validity window opened or closed, `touched`).
    pub fn prepare(
        &self,
        changes: Vec<RecordChange>,
        touched: impl IntoIterator<Item = Identity>,
        now: i64,
    ) -> Prepared {
        // Ordered so an identity's changed records are one range: a large batch
        // stays O(n log n).
        let mut overlay: BTreeMap<RecordKey, Option<Record>> = BTreeMap::new();
        let mut affected: BTreeSet<Identity> = touched.into_iter().collect();
        let mut records_digest = self.records_digest;
        for ch in &changes {
            match ch {
                RecordChange::Put { before, after } => {
                    if let Some(b) = before {
                        records_digest.remove_bytes(&record_bytes(b));
                    }
                    records_digest.add_bytes(&record_bytes(after));
                    affected.insert(after.identity());
                    overlay.insert(
                        (after.identity(), after.source.clone()),
                        Some(after.clone()),
                    );
                }
                RecordChange::Delete { before } => {
                    records_digest.remove_bytes(&record_bytes(before));
                    affected.insert(before.identity());
                    overlay.insert((before.identity(), before.source.clone()), None);
                }
            }
        }
        let mut digest = self.digest;
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        for ident in affected {
            let old = self.effective(&ident);
            let new = self.effective_with(&ident, &overlay, now);
            if old == new {
                continue;
            }
            if let Some(o) = old {
                digest.remove(&o.entry);
            }
            match new {
                Some(n) => {
                    digest.add(&n.entry);
                    upserts.push(n);
                }
                None => removals.push(ident),
            }
        }
        Prepared {
            changes,
            upserts,
            removals,
            digest,
            records_digest,
        }
    }

    fn put(&mut self, r: &Record) {
        let key = (r.identity(), self.names.intern(&r.source));
        self.del(&key);
        let stored = Stored::new(r, &mut self.names);
        if let Some(u) = r.valid_until {
            self.until.insert((u, key.clone()));
        }
        if r.valid_from > r.created_at {
            self.from.insert((r.valid_from, key.clone()));
        }
        if let Some(p) = r.promote_at {
            self.promote.insert((p, key.clone()));
        }
        self.records.insert(key, stored);
    }

    fn del(&mut self, key: &Key) {
        if let Some(old) = self.records.remove(key) {
            if let Some(u) = old.valid_until {
                self.until.remove(&(u, key.clone()));
            }
            self.from.remove(&(old.valid_from, key.clone()));
            if let Some(p) = old.promote_at {
                self.promote.remove(&(p, key.clone()));
            }
        }
    }

    /// Applies record changes that are now durable.
    pub fn apply_records(&mut self, changes: &[RecordChange]) {
        for ch in changes {
            match ch {
                RecordChange::Put { after, .. } => self.put(after),
                RecordChange::Delete { before } => {
                    if let Some(key) = self.key(&before.identity(), &before.source) {
                        self.del(&key)
                    }
                }
            }
        }
    }

    /// The effective part of a prepared change (records applied separately).
    pub fn apply_effective(&mut self, p: &Prepared, version: u64) {
        for r in &p.upserts {
            let e = self.effective_of_record(r);
            self.effective.insert(r.identity(), e);
        }
        for i in &p.removals {
            self.effective.remove(i);
        }
        self.digest = p.digest;
        self.records_digest = p.records_digest;
        self.version = version;
    }

    pub fn delta(&self, p: &Prepared, version: u64) -> pb::Delta {
        pb::Delta {
            previous_version: self.version,
            version,
            digest: p.digest.to_bytes(),
            upserts: p.upserts.iter().map(pb::Entry::from).collect(),
            removals: p
                .removals
                .iter()
                .map(c2wall_model::wire::identity_to_wire)
                .collect(),
            more: false,
            signature: Vec::new(),
            lineage: Vec::new(),
        }
    }

    /// Records whose validity window opens or closes in (after, upto].
    pub fn transitions(&self, after: i64, upto: i64) -> (Vec<Record>, BTreeSet<Identity>) {
        let expired = self
            .until
            .iter()
            .take_while(|(u, _)| *u <= upto)
            .filter_map(|(_, k)| self.records.get(k).map(|s| s.record(&k.0, &k.1)))
            .collect();
        let opened = self
            .from
            .range((after + 1, (min_identity(), Arc::from("")))..)
            .take_while(|(f, _)| *f <= upto)
            .map(|(_, (i, _))| i.clone())
            .collect();
        (expired, opened)
    }

    /// Monitor records whose promotion time has come.
    pub fn due_promotions(&self, upto: i64) -> Vec<Record> {
        self.promote
            .iter()
            .take_while(|(p, _)| *p <= upto)
            .filter_map(|(_, k)| self.records.get(k).map(|s| s.record(&k.0, &k.1)))
            .collect()
    }
}

/// [`effective`] over owned records.
fn effective_of_records(records: impl IntoIterator<Item = Record>) -> Option<Record> {
    let records: Vec<Record> = records.into_iter().collect();
    effective(&records)
}

fn min_identity() -> Identity {
    Identity {
        target: (c2wall_model::Prefix::host(std::net::Ipv4Addr::UNSPECIFIED.into()).truncate(0))
            .into(),
        scope: None,
    }
}
