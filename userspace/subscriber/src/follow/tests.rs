//! The set's owner: snapshots gathered chunk by chunk, saved only once
//! enforced.

use super::*;
use c2wall_model::SetDigest;

fn snapshot(version: u64, prefixes: &[&str]) -> pb::SyncMessage {
    let entries: Vec<pb::Entry> = prefixes
        .iter()
        .map(|p| pb::Entry {
            key: Some(pb::EntryKey {
                prefix: (*p).into(),
                ..Default::default()
            }),
            action: pb::Action::Drop as i32,
            direction: pb::Direction::Both as i32,
            ..Default::default()
        })
        .collect();
    let values: Vec<Entry> = entries
        .iter()
        .map(|e| Entry::from_wire(e).unwrap())
        .collect();
    pb::SyncMessage {
        kind: Some(Kind::Snapshot(pb::SnapshotChunk {
            version,
            digest: SetDigest::of(&values).to_bytes(),
            last: true,
            entries,
            ..Default::default()
        })),
    }
}

/// `snapshot(version, prefixes)` cut into chunks of `per` entries.
fn chunks(version: u64, prefixes: &[&str], per: usize) -> Vec<pb::SyncMessage> {
    let Some(Kind::Snapshot(whole)) = snapshot(version, prefixes).kind else {
        unreachable!()
    };
    let n = whole.entries.chunks(per).len();
    whole
        .entries
        .chunks(per)
        .enumerate()
        .map(|(seq, es)| pb::SyncMessage {
            kind: Some(Kind::Snapshot(pb::SnapshotChunk {
                seq: seq as u32,
                last: seq + 1 == n,
                entries: es.to_vec(),
                ..whole.clone()
            })),
        })
        .collect()
}

#[test]
fn chunks_decoded_as_they_arrive_make_the_set_and_a_bad_one_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("c2wall-chunks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = applied.clone();
    let apply: ApplyFn = Arc::new(move |set, _| {
        a.store(set.entries.len(), Ordering::Relaxed);
        Ok(pb::AgentStatus::default())
    });
    let synced = Synced::new(
        SyncedSet::default(),
        dir.join("set.pb"),
        Trust::default(),
        Arc::new(SyncStatus::default()),
        apply,
        Arc::new(|_| {}),
    );
    let mut s = synced.lock().unwrap();
    let prefixes = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "2001:db8::/48",
        "10.0.0.0/8",
    ];
    // One batch per chunk, as they come off the wire one at a time.
    for m in chunks(7, &prefixes, 2) {
        s.take_batch(vec![m]).unwrap();
    }
    assert_eq!((s.set().version, applied.load(Ordering::Relaxed)), (7, 5));
    // A bad entry in the middle chunk fails that batch; the set stays.
    let mut bad = chunks(8, &["192.0.2.9", "198.51.100.0/24", "203.0.113.0/24"], 1);
    if let Some(Kind::Snapshot(c)) = &mut bad[1].kind {
        c.entries[0].key.as_mut().unwrap().prefix = "198.51.100.1/24".into();
    }
    s.take_batch(vec![bad[0].clone()]).unwrap();
    let e = s.take_batch(vec![bad[1].clone()]).unwrap_err();
    assert!(e.to_string().contains("198.51.100.1/24"), "{e}");
    assert_eq!((s.set().version, s.set().entries.len()), (7, 5));
    // The stream is resubscribed: what was gathered is dropped, and a
    // snapshot must start again from its first chunk.
    s.forget_parts();
    assert!(s.take_batch(vec![bad[2].clone()]).is_err());
    s.take_batch(chunks(9, &prefixes[..2], 1)).unwrap();
    assert_eq!((s.set().version, applied.load(Ordering::Relaxed)), (9, 2));
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_is_saved_only_once_enforced_and_nothing_is_left_when_enforcing_fails() {
    let dir = std::env::temp_dir().join(format!("c2wall-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("set.pb");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fail.clone();
    let apply: ApplyFn = Arc::new(move |_, _| match f.load(Ordering::Relaxed) {
        true => Err("the kernel said no".into()),
        false => Ok(pb::AgentStatus::default()),
    });
    let synced = Synced::new(
        SyncedSet::default(),
        path.clone(),
        Trust::default(),
        Arc::new(SyncStatus::default()),
        apply,
        Arc::new(|_| {}),
    );
    let mut s = synced.lock().unwrap();
    s.take_batch(vec![snapshot(3, &["192.0.2.1"])]).unwrap();
    let saved = std::fs::read(&path).unwrap();
    fail.store(true, Ordering::Relaxed);
    assert!(s.take_batch(vec![snapshot(4, &["192.0.2.2"])]).is_err());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        saved,
        "the saved set is the enforced one"
    );
    assert!(
        !path.with_extension("tmp").exists(),
        "the unused file is removed"
    );
    assert_eq!(s.set().version, 3);
    fail.store(false, Ordering::Relaxed);
    s.take_batch(vec![snapshot(5, &["192.0.2.3"])]).unwrap();
    let loaded = SyncedSet::<Entry>::load(&path).unwrap().unwrap();
    assert_eq!((loaded.version, loaded.entries.len()), (5, 1));
    assert!(!path.with_extension("tmp").exists());
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}
