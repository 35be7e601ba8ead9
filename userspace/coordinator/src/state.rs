//! The working set in memory: every record, the effective set agents enforce,
//! its digest and version. Changes are prepared against it, persisted, then
//! applied, so memory never runs ahead of the disk.

use std::collections::{BTreeMap, BTreeSet};

use c2wall_model::{effective, Identity, Record, SetDigest};
use c2wall_proto::v1 as pb;

use crate::store::RecordChange;

pub type RecordKey = (Identity, String);

/// A record as the records digest covers it: its wire form, every field.
fn record_bytes(r: &Record) -> Vec<u8> {
    use prost::Message;
    pb::Entry::from(r).encode_to_vec()
}

#[derive(Default)]
pub struct State {
    records: BTreeMap<RecordKey, Record>,
    /// (valid_until, key) and (valid_from, key) of every record, so the expiry
    /// worker finds what changes in a second without scanning the records.
    until: BTreeSet<(i64, RecordKey)>,
    from: BTreeSet<(i64, RecordKey)>,
    /// (promote_at, key) of monitor records scheduled to become drop.
    promote: BTreeSet<(i64, RecordKey)>,
    pub effective: BTreeMap<Identity, Record>,
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
        for r in records {
            s.records_digest.add_bytes(&record_bytes(&r));
            s.put(r);
        }
        // The effective set as the version left it: a record still stored
        // past its window is one the expiry worker has not removed yet (it
        // deletes what it expires), so it still counts; its expiry is the
        // worker's next version.
        let ids: BTreeSet<Identity> = s.records.keys().map(|(i, _)| *i).collect();
        for i in ids {
            let listed = s.records_of(&i).into_iter().filter(|r| r.valid_from <= now);
            if let Some(e) = effective(listed) {
                s.digest.add(&e.entry);
                s.effective.insert(i, e);
            }
        }
        s
    }

    /// The effective record of `ident` with `overlay` applied on top of the
    /// stored records (None in the overlay = deleted).
    fn effective_of(
        &self,
        ident: &Identity,
        overlay: &BTreeMap<RecordKey, Option<Record>>,
        now: i64,
    ) -> Option<Record> {
        let base = self
            .records
            .range((*ident, String::new())..)
            .take_while(|((i, _), _)| i == ident)
            .filter(|(k, _)| !overlay.contains_key(*k))
            .map(|(_, r)| r);
        let extra = overlay
            .range((*ident, String::new())..)
            .take_while(|((i, _), _)| i == ident)
            .filter_map(|(_, r)| r.as_ref());
        effective(base.chain(extra).filter(|r| r.active_at(now)))
    }

    /// Records of one identity (any source).
    pub fn records_of(&self, ident: &Identity) -> Vec<&Record> {
        self.records
            .range((*ident, String::new())..)
            .take_while(|((i, _), _)| i == ident)
            .map(|(_, r)| r)
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
            let old = self.effective.get(&ident);
            let new = self.effective_of(&ident, &overlay, now);
            if old.map(|r| r.entry) == new.as_ref().map(|r| r.entry) && old == new.as_ref() {
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

    pub fn records(&self) -> &BTreeMap<RecordKey, Record> {
        &self.records
    }

    fn put(&mut self, r: Record) {
        let key = (r.identity(), r.source.clone());
        self.del(&key);
        if let Some(u) = r.valid_until {
            self.until.insert((u, key.clone()));
        }
        self.from.insert((r.valid_from, key.clone()));
        if let Some(p) = r.promote_at {
            self.promote.insert((p, key.clone()));
        }
        self.records.insert(key, r);
    }

    fn del(&mut self, key: &RecordKey) {
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
                RecordChange::Put { after, .. } => self.put(after.clone()),
                RecordChange::Delete { before } => {
                    self.del(&(before.identity(), before.source.clone()))
                }
            }
        }
    }

    /// The effective part of a prepared change (records applied separately).
    pub fn apply_effective(&mut self, p: &Prepared, version: u64) {
        for r in &p.upserts {
            self.effective.insert(r.identity(), r.clone());
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
            .filter_map(|(_, k)| self.records.get(k).cloned())
            .collect();
        let opened = self
            .from
            .range((after + 1, (min_identity(), String::new()))..)
            .take_while(|(f, _)| *f <= upto)
            .map(|(_, (i, _))| *i)
            .collect();
        (expired, opened)
    }
}

impl State {
    /// Monitor records whose promotion time has come.
    pub fn due_promotions(&self, upto: i64) -> Vec<Record> {
        self.promote
            .iter()
            .take_while(|(p, _)| *p <= upto)
            .filter_map(|(_, k)| self.records.get(k).cloned())
            .collect()
    }
}

fn min_identity() -> Identity {
    Identity {
        prefix: c2wall_model::Prefix::host(std::net::Ipv4Addr::UNSPECIFIED.into()).truncate(0),
        scope: None,
    }
}
