//! Catching a subscriber up over several versions at once. With a staged
//! rollout the versions it missed are sent as one delta with their net
//! effect, carrying the last version's digest and signature (which sign
//! only the version and the set's digest, so the net delta verifies like
//! the last one): an agent held below a version that was then undone never
//! applies that version, even for a moment.

use std::collections::BTreeMap;

use bytes::Bytes;
use c2wall_model::wire::identity_from_wire;
use c2wall_model::Identity;
use c2wall_proto::v1 as pb;
use prost::Message;

use super::frame::delta_frames;
use crate::error::CoordError;

/// The frames that bring a subscriber from `from` to `to` as one net
/// delta, out of the stored deltas after `from` (as `Store::deltas_after`
/// gives them).
pub fn catch_up_frames(encoded: &[Vec<u8>], from: u64, to: u64) -> Result<Vec<Bytes>, CoordError> {
    if to <= from {
        return Ok(Vec::new());
    }
    let corrupt = |e: prost::DecodeError| CoordError::Corrupt(format!("stored delta: {e}"));
    let mut net: BTreeMap<Identity, Option<pb::Entry>> = BTreeMap::new();
    let mut last: Option<pb::Delta> = None;
    for b in encoded {
        let d = pb::Delta::decode(b.as_slice()).map_err(corrupt)?;
        if d.version <= from {
            continue;
        }
        if d.version > to {
            break;
        }
        for k in &d.removals {
            let id = identity_from_wire(k)
                .map_err(|e| CoordError::Corrupt(format!("stored delta {}: {e}", d.version)))?;
            net.insert(id, None);
        }
        for e in &d.upserts {
            let k = e.key.as_ref().ok_or_else(|| {
                CoordError::Corrupt(format!(
                    "stored delta {}: an entry without a key",
                    d.version
                ))
            })?;
            let id = identity_from_wire(k)
                .map_err(|e| CoordError::Corrupt(format!("stored delta {}: {e}", d.version)))?;
            net.insert(id, Some(e.clone()));
        }
        last = Some(d);
    }
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    for (id, e) in net {
        match e {
            Some(e) => upserts.push(e),
            None => removals.push(c2wall_model::wire::identity_to_wire(&id)),
        }
    }
    let d = pb::Delta {
        previous_version: from,
        upserts,
        removals,
        more: false,
        ..last
    };
    Ok(delta_frames(&d.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(prev: u64, v: u64, up: &[&str], rm: &[&str]) -> Vec<u8> {
        let key = |p: &str| pb::EntryKey {
            prefix: p.into(),
            ..Default::default()
        };
        pb::Delta {
            previous_version: prev,
            version: v,
            digest: vec![v as u8],
            signature: vec![v as u8; 2],
            upserts: up
                .iter()
                .map(|p| pb::Entry {
                    key: Some(key(p)),
                    ..Default::default()
                })
                .collect(),
            removals: rm.iter().map(|p| key(p)).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn decode(frames: &[Bytes]) -> pb::Delta {
        let m = pb::SyncMessage::decode(&frames[0][..]).unwrap();
        match m.kind {
            Some(pb::sync_message::Kind::Delta(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_entry_added_then_undone_never_reaches_a_held_subscriber() {
        let log = vec![
            delta(1, 2, &["192.0.2.1"], &[]),
            delta(2, 3, &["192.0.2.66"], &[]),
            delta(3, 4, &[], &["192.0.2.66"]),
        ];
        let d = decode(&catch_up_frames(&log, 1, 4).unwrap());
        assert_eq!((d.previous_version, d.version), (1, 4));
        assert_eq!(
            (d.digest.clone(), d.signature.clone()),
            (vec![4], vec![4, 4])
        );
        let up: Vec<&str> = d
            .upserts
            .iter()
            .map(|e| e.key.as_ref().unwrap().prefix.as_str())
            .collect();
        assert_eq!(up, ["192.0.2.1"]);
        assert_eq!(
            d.removals.len(),
            1,
            "removing what it never had is a no-op for the agent"
        );
        // Up to a ceiling: versions above it stay behind.
        let d = decode(&catch_up_frames(&log, 1, 2).unwrap());
        assert_eq!(d.version, 2);
        assert_eq!(d.upserts.len(), 1);
    }
}
