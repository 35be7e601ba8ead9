//! A set from a snapshot's entries: decoded and hashed one part per core,
//! then gathered in key order in one bulk build. A million-entry snapshot
//! was decoded, inserted one by one into the map and hashed on one core, the
//! largest share of the time from the coordinator's stream to enforcement.

use std::collections::BTreeMap;

use c2wall_model::{parts::in_parts, Identity, SetDigest};
use c2wall_proto::v1 as pb;

use super::{value_of, SetError};
use crate::value::SetValue;

/// Entries below which one thread does all the work (a thread costs more
/// than it saves).
pub(super) const PART_MIN: usize = 50_000;

/// One part's values, in its order, and their digest.
type Part<V> = Result<(Vec<(Identity, V)>, SetDigest), SetError>;

/// The entries of `entries` by identity (a later repeat of an identity
/// replaces an earlier one) and their digest; the first entry that does not
/// decode, in list order, is the error.
pub(super) fn decode<V: SetValue>(
    entries: &[pb::Entry],
) -> Result<(BTreeMap<Identity, V>, SetDigest), SetError> {
    let done = in_parts(entries.len(), PART_MIN, |r| decode_part::<V>(&entries[r]));
    let mut all = Vec::with_capacity(entries.len());
    let mut digest = SetDigest::default();
    for part in done {
        let (values, d) = part?;
        all.extend(values);
        digest.merge(d);
    }
    // Sorted and deduplicated in one pass (a stable sort: the later of two
    // equal identities is the one kept, as one insert after another keeps).
    let map: BTreeMap<Identity, V> = all.into_iter().collect();
    if map.len() < entries.len() {
        // A repeated identity: the digest is of what is kept, as the
        // coordinator's is of its set.
        digest = SetDigest::of(map.values().map(V::entry));
    }
    Ok((map, digest))
}

fn decode_part<V: SetValue>(part: &[pb::Entry]) -> Part<V> {
    let mut digest = SetDigest::default();
    let mut out = Vec::with_capacity(part.len());
    for e in part {
        let v: V = value_of(e)?;
        digest.add(v.entry());
        out.push((v.entry().identity(), v));
    }
    Ok((out, digest))
}
