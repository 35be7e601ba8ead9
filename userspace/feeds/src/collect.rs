//! Accumulates a parse: entries (exact repeats folded), rejects, skips.

use std::collections::HashSet;

use c2wall_model::{PortScope, Target};

use crate::{FeedEntry, Location, Parsed, Rejected};

#[derive(Default)]
pub struct Collector {
    out: Parsed,
    seen: HashSet<(Target, Option<PortScope>)>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the first of exact repeats; nested and overlapping prefixes are
    /// different entries and each keeps its own reference.
    pub fn entry(&mut self, e: FeedEntry) {
        if self.seen.insert((e.target.clone(), e.scope)) {
            self.out.entries.push(e);
        } else {
            self.out.duplicates += 1;
        }
    }

    pub fn reject(&mut self, at: Location, reason: impl Into<String>) {
        self.out.rejected.push(Rejected {
            at,
            reason: reason.into(),
        });
    }

    pub fn skip(&mut self) {
        self.out.skipped += 1;
    }

    pub fn truncated(&mut self, why: String) {
        self.out.truncated = Some(why);
    }

    /// Records seen so far (accepted, repeated, rejected; not skipped).
    pub fn records(&self) -> usize {
        self.out.records()
    }

    pub fn finish(self) -> Parsed {
        self.out
    }
}
