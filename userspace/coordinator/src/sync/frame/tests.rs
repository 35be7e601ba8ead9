//! Snapshot chunks: what a subscriber decodes is the set, in order, whether
//! one thread encoded it or several.

use c2wall_model::{wire::entry_to_wire, Action, Direction, Entry, Record, SetDigest};

use super::*;

fn state(n: usize) -> State {
    let records = (0..n)
        .map(|i| Record {
            entry: Entry {
                target: format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
                    .parse()
                    .unwrap(),
                scope: None,
                action: if i % 3 == 0 {
                    Action::Monitor
                } else {
                    Action::Drop
                },
                direction: Direction::Both,
            },
            source: "feed:test".into(),
            category: "mirai".into(),
            reference: format!("ref {i}"),
            confidence: 80,
            valid_from: 0,
            valid_until: None,
            created_by: "feed:test".into(),
            created_at: 1,
            promote_at: None,
            chain: Vec::new(),
        })
        .collect();
    State::load(records, 42, 100)
}

/// The chunks decoded: (seq, last, has signature) per chunk, and every
/// entry in order.
fn decoded(frames: &[Bytes]) -> (Vec<(u32, bool, bool)>, Vec<pb::Entry>) {
    let (mut heads, mut entries) = (Vec::new(), Vec::new());
    for f in frames {
        assert!(f.len() <= FRAME_BYTES, "a frame of {} bytes", f.len());
        let m = pb::SyncMessage::decode(f.as_ref()).unwrap();
        let Some(pb::sync_message::Kind::Snapshot(c)) = m.kind else {
            panic!("not a snapshot chunk")
        };
        assert_eq!((c.version, c.lineage.as_slice()), (42, &b"lineage"[..]));
        heads.push((c.seq, c.last, !c.signature.is_empty()));
        entries.extend(c.entries);
    }
    (heads, entries)
}

#[test]
fn chunks_carry_every_entry_in_order_with_one_last_signed_chunk() {
    let (_, signer) = Signer32::generate();
    let seal = SnapshotSeal {
        signer: Some(&signer),
        lineage: b"lineage",
        moved: None,
    };
    // One part, several parts (past PART_MIN per core), and an empty set.
    for (n, detail) in [0, 1_000, 2 * PART_MIN + 17]
        .into_iter()
        .flat_map(|n| [(n, Detail::Records), (n, Detail::EntriesOnly)])
    {
        let s = state(n);
        let (heads, entries) = decoded(&snapshot_chunks(&seal, &s, detail));
        let want: Vec<pb::Entry> = match detail {
            Detail::Records => s
                .effective_records(0)
                .map(|r| pb::Entry::from(&r))
                .collect(),
            Detail::EntriesOnly => s.effective_entries(0).map(|e| entry_to_wire(&e)).collect(),
        };
        assert_eq!(entries.len(), n);
        assert!(
            entries == want,
            "{n} entries, {detail:?}: not the set in order"
        );
        let with_provenance = entries.iter().filter(|e| !e.reference.is_empty()).count();
        let want_provenance = if detail == Detail::Records { n } else { 0 };
        assert_eq!(with_provenance, want_provenance, "{detail:?}");
        // Either way the entries are the set the digest covers.
        let of = |e: &pb::Entry| Record::try_from(e).unwrap().entry;
        assert_eq!(
            SetDigest::of(entries.iter().map(of).collect::<Vec<_>>().iter()),
            s.digest
        );
        let count = heads.len() as u32;
        for (i, (seq, last, signed)) in heads.into_iter().enumerate() {
            let is_last = i as u32 == count - 1;
            assert_eq!(
                (seq, last, signed),
                (i as u32, is_last, is_last),
                "{n} entries"
            );
        }
    }
}
