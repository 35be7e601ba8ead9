//! How a record is held in memory: one entry of a large map per record, so
//! its size decides the coordinator's resident memory at a million entries.
//! The key already holds the identity and the source, so the value does not;
//! the low-cardinality strings (source, category, creator) are shared
//! through an interner instead of one heap copy per record.

use std::{collections::HashSet, sync::Arc};

use c2wall_model::{Action, Direction, Entry, Hop, Identity, Record};

/// The names of sources, categories and creators, one copy each. Never
/// shrinks: there are a few hundred such names, not one per record.
#[derive(Default)]
pub(super) struct Names(HashSet<Arc<str>>);

impl Names {
    pub(super) fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }

    /// The shared copy of `s`, if any record ever used it.
    pub(super) fn get(&self, s: &str) -> Option<Arc<str>> {
        self.0.get(s).cloned()
    }
}

/// A record less its key (identity, source).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Stored {
    action: Action,
    direction: Direction,
    confidence: u8,
    category: Arc<str>,
    reference: Box<str>,
    created_by: Arc<str>,
    pub(super) valid_from: i64,
    pub(super) valid_until: Option<i64>,
    pub(super) created_at: i64,
    pub(super) promote_at: Option<i64>,
    /// Upstream provenance (empty, with no allocation, for local records).
    chain: Box<[Hop]>,
}

impl Stored {
    pub(super) fn new(r: &Record, names: &mut Names) -> Stored {
        Stored {
            action: r.entry.action,
            direction: r.entry.direction,
            confidence: r.confidence,
            category: names.intern(&r.category),
            reference: r.reference.as_str().into(),
            created_by: names.intern(&r.created_by),
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            created_at: r.created_at,
            promote_at: r.promote_at,
            chain: r.chain.clone().into_boxed_slice(),
        }
    }

    /// The whole record again.
    pub(super) fn record(&self, ident: &Identity, source: &str) -> Record {
        Record {
            entry: Entry {
                target: ident.target.clone(),
                scope: ident.scope,
                action: self.action,
                direction: self.direction,
            },
            source: source.to_string(),
            category: self.category.to_string(),
            reference: self.reference.to_string(),
            confidence: self.confidence,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            created_by: self.created_by.to_string(),
            created_at: self.created_at,
            promote_at: self.promote_at,
            chain: self.chain.to_vec(),
        }
    }
}

/// The effective entry of an identity: which source's record supplies it
/// (see [`c2wall_model::effective`]) and the union of directions; the rest is
/// that record's.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Effective {
    pub(super) action: Action,
    pub(super) direction: Direction,
    pub(super) source: Arc<str>,
}

impl Effective {
    pub(super) fn entry(&self, ident: &Identity) -> Entry {
        Entry {
            target: ident.target.clone(),
            scope: ident.scope,
            action: self.action,
            direction: self.direction,
        }
    }
}

/// One stored record, borrowed: its key and fields without building the
/// whole [`Record`] (a scan over a million records filters on these first).
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    pub(super) ident: &'a Identity,
    pub(super) source: &'a Arc<str>,
    pub(super) stored: &'a Stored,
}

impl<'a> RecordRef<'a> {
    pub fn identity(&self) -> &'a Identity {
        self.ident
    }
    pub fn source(&self) -> &'a str {
        self.source
    }
    pub fn category(&self) -> &'a str {
        &self.stored.category
    }
    pub fn action(&self) -> Action {
        self.stored.action
    }
    pub fn record(&self) -> Record {
        self.stored.record(self.ident, self.source)
    }
}
