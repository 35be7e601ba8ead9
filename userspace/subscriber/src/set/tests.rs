//! The verified set: digests, signatures, lineages, the saved generations.
use super::*;

/// The agent's set: entries alone.
type SyncedSet = super::SyncedSet<Entry>;
type Pending = super::Pending<Entry>;

fn e(prefix: &str) -> pb::Entry {
    pb::Entry {
        key: Some(pb::EntryKey {
            prefix: prefix.into(),
            ..Default::default()
        }),
        action: pb::Action::Drop as i32,
        direction: pb::Direction::Both as i32,
        ..Default::default()
    }
}

fn digest_of(prefixes: &[&str]) -> Vec<u8> {
    let es: Vec<Entry> = prefixes
        .iter()
        .map(|p| value_of::<Entry>(&e(p)).unwrap())
        .collect();
    SetDigest::of(&es).to_bytes()
}

fn delta(prev: u64, v: u64, add: &str, remove: &str, digest: Vec<u8>) -> pb::Delta {
    pb::Delta {
        previous_version: prev,
        version: v,
        digest,
        upserts: vec![e(add)],
        removals: vec![pb::EntryKey {
            prefix: remove.into(),
            ..Default::default()
        }],
        more: false,
        signature: Vec::new(),
        lineage: Vec::new(),
    }
}

#[test]
fn snapshots_and_deltas_are_verified_and_a_bad_one_changes_nothing() {
    let snap = [e("192.0.2.1"), e("192.0.2.2")];
    let bad = SyncedSet::from_snapshot(
        &[],
        3,
        &digest_of(&["192.0.2.1"]),
        &snap,
        &[],
        &Trust::default(),
    );
    assert!(matches!(bad, Err(SetError::Digest { version: 3, .. })));
    let mut set = SyncedSet::from_snapshot(
        &[],
        3,
        &digest_of(&["192.0.2.1", "192.0.2.2"]),
        &snap,
        &[],
        &Trust::default(),
    )
    .unwrap();
    let original = set.clone();
    let good = digest_of(&["192.0.2.2", "192.0.2.3"]);
    let mut p = Pending::default();
    // A tampered delta (digest of another set) is refused and undone.
    let tampered = delta(
        3,
        4,
        "192.0.2.3",
        "192.0.2.1/32",
        digest_of(&["192.0.2.2", "192.0.2.9"]),
    );
    assert!(matches!(
        set.apply_delta(&tampered, &mut p, &Trust::default()),
        Err(SetError::Digest { version: 4, .. })
    ));
    assert_eq!(set, original, "unchanged by a refused delta");
    // A gap is refused.
    let gap = delta(2, 4, "192.0.2.3", "192.0.2.1/32", good.clone());
    assert!(matches!(
        set.apply_delta(&gap, &mut p, &Trust::default()),
        Err(SetError::Gap { have: 3, .. })
    ));
    assert!(p.is_empty());
    set.apply_delta(
        &delta(3, 4, "192.0.2.3", "192.0.2.1/32", good),
        &mut p,
        &Trust::default(),
    )
    .unwrap();
    assert_eq!(set.version, 4);
    let keys: Vec<String> = set.entries.keys().map(|k| k.to_string()).collect();
    assert_eq!(keys, ["192.0.2.2/32", "192.0.2.3/32"]);
    let changes: Vec<(String, bool)> = set
        .changes(&p)
        .iter()
        .map(|(k, v)| (k.to_string(), v.is_some()))
        .collect();
    assert_eq!(
        changes,
        [
            ("192.0.2.1/32".into(), false),
            ("192.0.2.3/32".into(), true)
        ]
    );
    // Enforcing failed: everything the batch did is undone.
    set.rollback(p);
    assert_eq!(set, original);
}

#[test]
fn with_trusted_keys_only_signed_sets_are_accepted() {
    use c2wall_model::sign::Signer32;
    let (_, key) = Signer32::generate();
    let (_, other) = Signer32::generate();
    let trust = Trust::from_hex([key.public_hex().as_str()]).unwrap();
    let d1 = digest_of(&["192.0.2.1"]);
    let snap = [e("192.0.2.1")];
    // Unsigned and wrongly signed snapshots are refused; signed is fine.
    assert!(matches!(
        SyncedSet::from_snapshot(&[], 1, &d1, &snap, &[], &trust),
        Err(SetError::Signature { version: 1 })
    ));
    assert!(
        SyncedSet::from_snapshot(&[], 1, &d1, &snap, &other.sign(&[], 1, &d1), &trust).is_err()
    );
    let mut set =
        SyncedSet::from_snapshot(&[], 1, &d1, &snap, &key.sign(&[], 1, &d1), &trust).unwrap();
    let before = set.clone();
    // A man in the middle adds an entry and fixes up the digest (anyone
    // can compute it) but cannot sign: refused, the set is unchanged.
    let forged = digest_of(&["192.0.2.1", "198.51.100.7"]);
    let mut d = delta(1, 2, "198.51.100.7", "203.0.113.200", forged.clone());
    d.removals.clear();
    d.signature = other.sign(&[], 2, &forged);
    let mut p = Pending::default();
    assert!(matches!(
        set.apply_delta(&d, &mut p, &trust),
        Err(SetError::Signature { version: 2 })
    ));
    assert_eq!(set, before);
    d.signature = key.sign(&[], 2, &forged);
    set.apply_delta(&d, &mut p, &trust).unwrap();
    assert_eq!(set.version, 2);
}

#[test]
fn the_persisted_set_is_snapshot_plus_journal_and_damage_is_handled() {
    let dir = std::env::temp_dir().join(format!("c2wall-synced-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("set.pb");
    assert_eq!(SyncedSet::load(&path).unwrap(), None);
    let mut set = SyncedSet::from_snapshot(
        &[],
        7,
        &digest_of(&["2001:db8::/32"]),
        &[e("2001:db8::/32")],
        &[],
        &Trust::default(),
    )
    .unwrap();
    set.save(&path).unwrap();
    assert_eq!(SyncedSet::load(&path).unwrap().as_ref(), Some(&set));
    // Two journalled deltas come back on load.
    for (v, add, digest) in [
        (8, "192.0.2.1", digest_of(&["2001:db8::/32", "192.0.2.1"])),
        (9, "192.0.2.2", digest_of(&["2001:db8::/32", "192.0.2.2"])),
    ] {
        let mut p = Pending::default();
        let remove = if v == 8 { "198.51.100.1" } else { "192.0.2.1" };
        set.apply_delta(
            &delta(v - 1, v, add, remove, digest),
            &mut p,
            &Trust::default(),
        )
        .unwrap();
        assert!(SyncedSet::journal(&path, &p).unwrap() > 0);
    }
    assert_eq!(SyncedSet::load(&path).unwrap().as_ref(), Some(&set));
    // A torn last record: the load stops at the version before it.
    let j = journal_path(&path);
    let len = std::fs::metadata(&j).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&j).unwrap();
    f.set_len(len - 3).unwrap();
    assert_eq!(SyncedSet::load(&path).unwrap().unwrap().version, 8);
    // A full save empties the journal.
    set.save(&path).unwrap();
    assert!(!j.exists());
    assert_eq!(SyncedSet::load(&path).unwrap(), Some(set));
    // A damaged file: set aside, the previous generation is used.
    let current = SyncedSet::load(&path).unwrap().unwrap();
    let mut newer = current.clone();
    newer.version += 1;
    newer.save(&path).unwrap();
    std::fs::write(&path, b"\x0a\xff garbage").unwrap();
    assert_eq!(SyncedSet::load(&path).unwrap(), Some(current));
    assert!(dir.join("set.damaged").exists());
    // Both damaged: no saved list, but no refusal to start either.
    std::fs::write(&path, b"\x0a\xff garbage").unwrap();
    std::fs::write(prev_path(&path), b"\x0a\xff garbage").unwrap();
    assert_eq!(SyncedSet::load(&path).unwrap(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn never_backwards_never_another_lineage_unless_moved_by_a_signed_act() {
    use c2wall_model::sign::Signer32;
    let (_, key) = Signer32::generate();
    let (_, other) = Signer32::generate();
    let trust = Trust::from_hex([key.public_hex().as_str()]).unwrap();
    let (a, b) = (vec![0xaa; 16], vec![0xbb; 16]);
    let d = digest_of(&["192.0.2.1"]);
    let snap = |lineage: &[u8], v: u64| {
        SyncedSet::from_snapshot(
            lineage,
            v,
            &d,
            &[e("192.0.2.1")],
            &key.sign(lineage, v, &d),
            &trust,
        )
        .unwrap()
    };
    let have = snap(&a, 5);
    assert!(SyncedSet::default()
        .may_follow(&snap(&b, 1), None, &trust)
        .is_ok());
    assert!(have.may_follow(&snap(&a, 5), None, &trust).is_ok());
    assert!(have.may_follow(&snap(&a, 6), None, &trust).is_ok());
    assert!(matches!(
        have.may_follow(&snap(&a, 4), None, &trust),
        Err(SetError::Older { have: 5, got: 4 })
    ));
    assert!(matches!(
        have.may_follow(&snap(&b, 9), None, &trust),
        Err(SetError::Lineage { .. })
    ));
    let mv = |from_version: u64, by: &Signer32| pb::LineageMove {
        from_lineage: a.clone(),
        from_version,
        to_lineage: b.clone(),
        signature: by.sign_move(&a, from_version, &b),
        ..Default::default()
    };
    // The operator's signed move covers our version: followed, even to a
    // lower version number.
    assert!(have
        .may_follow(&snap(&b, 2), Some(&mv(5, &key)), &trust)
        .is_ok());
    // A move that does not cover our version, or not signed by a trusted
    // key, is not enough.
    assert!(have
        .may_follow(&snap(&b, 2), Some(&mv(4, &key)), &trust)
        .is_err());
    assert!(have
        .may_follow(&snap(&b, 2), Some(&mv(5, &other)), &trust)
        .is_err());
    // A delta of another lineage is refused and changes nothing.
    let mut set = have.clone();
    let mut dl = delta(5, 6, "192.0.2.2", "192.0.2.1/32", digest_of(&["192.0.2.2"]));
    dl.lineage = b.clone();
    assert!(matches!(
        set.apply_delta(&dl, &mut Pending::default(), &Trust::default()),
        Err(SetError::Lineage { .. })
    ));
    assert_eq!(set, have);
}

#[test]
fn a_large_snapshot_decoded_in_parts_is_the_set_one_insert_after_another_builds() {
    // Past two parts' worth, out of order, with a repeat that differs (the
    // later one is kept) and a bad entry in the second part.
    let n = 2 * build_part_min() + 7;
    let prefix = |i: usize| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
    let mut wire: Vec<pb::Entry> = (0..n).rev().map(|i| e(&prefix(i))).collect();
    let mut repeat = e(&prefix(5));
    repeat.action = pb::Action::Monitor as i32;
    wire.push(repeat);
    let mut serial = BTreeMap::new();
    for w in &wire {
        let v: Entry = value_of(w).unwrap();
        serial.insert(v.identity(), v);
    }
    let digest = SetDigest::of(serial.values());
    let set = SyncedSet::from_snapshot(&[], 9, &digest.to_bytes(), &wire, &[], &Trust::default())
        .unwrap();
    assert_eq!(set.entries, serial);
    assert_eq!(set.digest, digest);
    assert_eq!(set.entries.len(), n);
    // The saved file's content is the whole set as one chunk.
    let file = pb::SnapshotChunk::decode(set.encode().as_slice()).unwrap();
    let want: Vec<pb::Entry> = set.entries.values().map(|v| v.to_wire()).collect();
    assert!(file.entries == want && file.version == 9 && file.last);
    // Without the repeat, the digest of the parts summed is the whole's.
    wire.pop();
    let whole = SetDigest::of(
        wire.iter()
            .map(|w| value_of::<Entry>(w).unwrap())
            .collect::<Vec<_>>()
            .iter(),
    );
    assert!(
        SyncedSet::from_snapshot(&[], 9, &whole.to_bytes(), &wire, &[], &Trust::default()).is_ok()
    );
    // A bad entry anywhere fails the whole snapshot.
    wire[n - 3].key = None;
    assert!(matches!(
        SyncedSet::from_snapshot(&[], 9, &whole.to_bytes(), &wire, &[], &Trust::default()),
        Err(SetError::Invalid(_))
    ));
}

fn build_part_min() -> usize {
    super::build::PART_MIN
}
