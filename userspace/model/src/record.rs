//! Records (an entry with its provenance), the effective entry agents enforce,
//! and the digest of a set.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::{Action, Direction, Entry, Identity};

/// One source's statement about one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub entry: Entry,
    /// A feed name or "operator:<name>".
    pub source: String,
    pub category: String,
    pub reference: String,
    /// 0-100.
    pub confidence: u8,
    /// Unix seconds.
    pub valid_from: i64,
    /// Unix seconds; `None` = no expiry.
    pub valid_until: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    /// Monitor first: when this monitor record becomes drop (None = never).
    pub promote_at: Option<i64>,
    /// For a record taken from an upstream coordinator: the coordinators it
    /// came through, the original publisher's first (empty otherwise).
    pub chain: Vec<Hop>,
}

/// Where an upstream record came from, as one coordinator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The upstream's name at the coordinator that followed it.
    pub upstream: String,
    /// The record's source, creator and creation time at that upstream.
    pub source: String,
    pub created_by: String,
    pub created_at: i64,
    /// The upstream version whose set first held the record as it is.
    pub version: u64,
}

/// The source under which a coordinator keeps what it takes from the
/// upstream it calls `name`.
pub fn upstream_source(name: &str) -> String {
    format!("{UPSTREAM_SOURCE_PREFIX}{name}")
}

/// Sources starting with this are written only by the coordinator's
/// follower of that upstream, never by publishers or imports.
pub const UPSTREAM_SOURCE_PREFIX: &str = "upstream:";

/// Hops a record may carry: a centre, a regional body, an ISP and so on,
/// not a loop.
pub const MAX_HOPS: usize = 8;

impl Record {
    pub fn identity(&self) -> Identity {
        self.entry.identity()
    }
    /// In force at `now` (unix seconds).
    pub fn active_at(&self, now: i64) -> bool {
        self.valid_from <= now && self.valid_until.is_none_or(|u| now < u)
    }
}

/// What agents enforce for one identity listed by several sources: the
/// strongest action (drop over monitor) and the union of directions. The
/// record returned is the one that supplies the action (on a tie, the newest),
/// with direction widened to the union.
pub fn effective<'a>(records: impl IntoIterator<Item = &'a Record>) -> Option<Record> {
    let mut best: Option<&Record> = None;
    let (mut to, mut from) = (false, false);
    for r in records {
        to |= r.entry.direction.includes_to();
        from |= r.entry.direction.includes_from();
        let stronger = |a: &Record, b: &Record| {
            let s = |r: &Record| (r.entry.action == Action::Drop, r.created_at);
            s(a) > s(b)
        };
        if best.is_none_or(|b| stronger(r, b)) {
            best = Some(r);
        }
    }
    let mut out = best?.clone();
    out.entry.direction = match (to, from) {
        (true, true) => Direction::Both,
        (true, false) => Direction::To,
        (false, true) => Direction::From,
        (false, false) => unreachable!("every direction includes a side"),
    };
    Some(out)
}

/// The effective entries of a set of records, one per identity.
pub fn effective_set<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> BTreeMap<Identity, Record> {
    let mut by_id: BTreeMap<Identity, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_id.entry(r.identity()).or_default().push(r);
    }
    by_id
        .into_iter()
        .filter_map(|(k, rs)| effective(rs).map(|e| (k, e)))
        .collect()
}

/// Order-independent digest of a set of effective entries: the lane-wise
/// wrapping sum of the SHA-256 of each entry's canonical form. Adding or
/// removing one entry updates it in O(1); two sets have equal digests only if
/// they hold the same entries (up to SHA-256 collisions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SetDigest(pub [u64; 4]);

impl SetDigest {
    fn entry_hash(e: &Entry) -> [u64; 4] {
        // The canonical form (`Display`'s) written into one buffer per
        // thread, not a new string per entry: a million-entry snapshot
        // hashes a million.
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let h = TEXT.with_borrow_mut(|t| {
            t.clear();
            e.write_text(t);
            Sha256::digest(t.as_bytes())
        });
        let mut out = [0u64; 4];
        for (i, lane) in out.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *lane = u64::from_be_bytes(b);
        }
        out
    }
    fn bytes_hash(b: &[u8]) -> [u64; 4] {
        let h = Sha256::digest(b);
        let mut out = [0u64; 4];
        for (i, lane) in out.iter_mut().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *lane = u64::from_be_bytes(x);
        }
        out
    }
    /// Adds any byte string (e.g. a whole encoded record) to the set.
    pub fn add_bytes(&mut self, b: &[u8]) {
        for (l, h) in self.0.iter_mut().zip(Self::bytes_hash(b)) {
            *l = l.wrapping_add(h);
        }
    }
    pub fn remove_bytes(&mut self, b: &[u8]) {
        for (l, h) in self.0.iter_mut().zip(Self::bytes_hash(b)) {
            *l = l.wrapping_sub(h);
        }
    }
    pub fn add(&mut self, e: &Entry) {
        for (l, h) in self.0.iter_mut().zip(Self::entry_hash(e)) {
            *l = l.wrapping_add(h);
        }
    }
    pub fn remove(&mut self, e: &Entry) {
        for (l, h) in self.0.iter_mut().zip(Self::entry_hash(e)) {
            *l = l.wrapping_sub(h);
        }
    }
    /// The digest of two disjoint sets together.
    pub fn merge(&mut self, other: SetDigest) {
        for (l, h) in self.0.iter_mut().zip(other.0) {
            *l = l.wrapping_add(h);
        }
    }
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut d = SetDigest::default();
        for e in entries {
            d.add(e);
        }
        d
    }
    pub fn to_bytes(self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_be_bytes()).collect()
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 32 {
            return None;
        }
        let mut d = [0u64; 4];
        for (i, lane) in d.iter_mut().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *lane = u64::from_be_bytes(x);
        }
        Some(SetDigest(d))
    }
}

impl std::fmt::Display for SetDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for l in self.0 {
            write!(f, "{l:016x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str, source: &str, action: Action, direction: Direction, at: i64) -> Record {
        Record {
            promote_at: None,
            entry: Entry {
                target: line.parse().unwrap(),
                scope: None,
                action,
                direction,
            },
            source: source.into(),
            category: String::new(),
            reference: String::new(),
            confidence: 50,
            valid_from: 0,
            valid_until: None,
            created_by: "t".into(),
            created_at: at,
            chain: Vec::new(),
        }
    }

    #[test]
    fn effective_takes_the_strongest_action_and_the_union_of_directions() {
        let a = rec("192.0.2.1", "feed-a", Action::Monitor, Direction::To, 1);
        let b = rec("192.0.2.1", "feed-b", Action::Drop, Direction::From, 2);
        let c = rec("192.0.2.1", "feed-c", Action::Monitor, Direction::To, 3);
        let e = effective([&a, &b, &c]).unwrap();
        assert_eq!(e.entry.action, Action::Drop);
        assert_eq!(e.entry.direction, Direction::Both);
        assert_eq!(e.source, "feed-b");
        let only = effective([&a, &c]).unwrap();
        assert_eq!(
            (only.source.as_str(), only.entry.direction),
            ("feed-c", Direction::To)
        );
    }

    #[test]
    fn digest_is_order_independent_and_incremental() {
        let es: Vec<Entry> = ["192.0.2.1", "192.0.2.2", "2001:db8::/32"]
            .iter()
            .map(|p| rec(p, "s", Action::Drop, Direction::Both, 0).entry)
            .collect();
        let d1 = SetDigest::of(&es);
        let d2 = SetDigest::of(es.iter().rev());
        assert_eq!(d1, d2);
        let mut d3 = SetDigest::of(&es[..2]);
        assert_ne!(d3, d1);
        d3.add(&es[2]);
        assert_eq!(d3, d1);
        d3.remove(&es[0]);
        assert_eq!(d3, SetDigest::of(&es[1..]));
        assert_eq!(SetDigest::from_bytes(&d1.to_bytes()), Some(d1));
        let mut changed = es[0].clone();
        changed.action = Action::Monitor;
        assert_ne!(SetDigest::of([&changed]), SetDigest::of([&es[0]]));
    }

    #[test]
    fn validity_window() {
        let mut r = rec("192.0.2.1", "s", Action::Drop, Direction::Both, 0);
        r.valid_from = 100;
        r.valid_until = Some(200);
        assert!(!r.active_at(99));
        assert!(r.active_at(100));
        assert!(r.active_at(199));
        assert!(!r.active_at(200));
    }
}
