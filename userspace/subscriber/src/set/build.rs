//! A set from a snapshot's entries, decoded and hashed as its chunks arrive
//! (while the next ones are still on the wire), one part per core for a
//! large chunk, then gathered in key order in one bulk build at the last
//! chunk. A million-entry snapshot was held as wire messages until its last
//! chunk, then decoded, inserted one by one into the map and hashed on one
//! core: the largest share of the time from the coordinator's stream to
//! enforcement.

use std::collections::BTreeMap;

use c2wall_model::{parts::in_parts, Identity, SetDigest};
use c2wall_proto::v1 as pb;

use super::{value_of, SetError};
use crate::value::SetValue;

/// Entries below which one thread does all the work (a thread costs more
/// than it saves). A coordinator's chunk holds about 40,000 lean entries:
/// two threads decode it, so the chunks that queued while the ones before
/// were decoded take half the time once the stream has ended.
pub(super) const PART_MIN: usize = 16_384;

/// One part's values, in its order, and their digest.
type Part<V> = (Vec<(Identity, V)>, SetDigest);

/// A snapshot's entries decoded so far, in list order.
pub struct Gathered<V> {
    parts: Vec<Part<V>>,
}

impl<V> Default for Gathered<V> {
    fn default() -> Self {
        Gathered { parts: Vec::new() }
    }
}

impl<V: SetValue> Gathered<V> {
    /// Decodes and hashes the next entries of the snapshot; the first that
    /// does not decode, in list order, is the error.
    pub fn push(&mut self, entries: &[pb::Entry]) -> Result<(), SetError> {
        for part in in_parts(entries.len(), PART_MIN, |r| decode_part::<V>(&entries[r])) {
            self.parts.push(part?);
        }
        Ok(())
    }

    /// The entries by identity (a later repeat of an identity replaces an
    /// earlier one) and their digest.
    pub(super) fn finish(self) -> (BTreeMap<Identity, V>, SetDigest) {
        let entries = self.parts.iter().map(|(values, _)| values.len()).sum();
        let mut all = Vec::with_capacity(entries);
        let mut digest = SetDigest::default();
        for (values, d) in self.parts {
            all.extend(values);
            digest.merge(d);
        }
        // Sorted and deduplicated in one pass (a stable sort: the later of
        // two equal identities is the one kept, as one insert after another
        // keeps).
        let map: BTreeMap<Identity, V> = all.into_iter().collect();
        if map.len() < entries {
            // A repeated identity: the digest is of what is kept, as the
            // coordinator's is of its set.
            digest = SetDigest::of(map.values().map(V::entry));
        }
        (map, digest)
    }
}

fn decode_part<V: SetValue>(part: &[pb::Entry]) -> Result<Part<V>, SetError> {
    let mut digest = SetDigest::default();
    let mut out = Vec::with_capacity(part.len());
    for e in part {
        let v: V = value_of(e)?;
        digest.add(v.entry());
        out.push((v.entry().identity(), v));
    }
    Ok((out, digest))
}
