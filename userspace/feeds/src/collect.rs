//! Accumulates a parse: entries (exact repeats folded), rejects, skips.

use std::collections::HashSet;

use c2wall_model::{PortScope, Target};

use crate::{FeedEntry, Location, Parsed, Rejected};

#[derive(Default)]
pub struct Collector {
    out: Parsed,
    seen: HashSet<(Target, Option<PortScope>)>,
    /// The entry count the feed states about itself, if it does.
    stated: Option<usize>,
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

    /// Notes the entry count a comment line states (`# Number of entries:
    /// N`, `# END (N entries)`), if it states one; `finish` checks it.
    /// Returns whether the line stated a count.
    pub fn stated_count(&mut self, line: &str) -> bool {
        match crate::text::stated_count(line) {
            Some(k) => {
                self.stated = Some(k);
                true
            }
            None => false,
        }
    }

    /// Records seen so far (accepted, repeated, rejected; not skipped).
    pub fn records(&self) -> usize {
        self.out.records()
    }

    /// The parse; a stated count that the records do not match marks it
    /// truncated (a download that ended early).
    pub fn finish(mut self) -> Parsed {
        let held = self.records();
        if let Some(k) = self.stated.filter(|k| *k != held) {
            if self.out.truncated.is_none() {
                self.truncated(format!("the file says it has {k} entries, it holds {held}"));
            }
        }
        self.out
    }
}
