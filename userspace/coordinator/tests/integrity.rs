//! A damaged, replaced or rolled-back store is refused at start, naming what
//! is wrong; an operator's recovery moves it to a new lineage with a move
//! that subscribers of the old one can verify.

use std::path::{Path, PathBuf};

use c2wall_coordinator::{
    core::{Coordinator, Origin},
    highwater,
    integrity::Integrity,
    store::sqlite::SqliteStore,
    CoordError,
};
use c2wall_proto::v1 as pb;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("c2wall-integrity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn open(db: &Path, recover: Option<&str>) -> Result<std::sync::Arc<Coordinator>, CoordError> {
    let store = SqliteStore::open(db)?;
    Coordinator::open_checked(
        Box::new(store),
        64,
        &Integrity {
            highwater: Some(highwater::path_for(db)),
            recover: recover.map(String::from),
        },
    )
}

fn publish(c: &Coordinator, host: &str) -> u64 {
    let e = pb::Entry {
        key: Some(pb::EntryKey {
            prefix: host.into(),
            ..Default::default()
        }),
        source: "feed".into(),
        ..Default::default()
    };
    let r = c2wall_model::Record::try_from(&e).unwrap();
    match c
        .publish(vec![r], vec![], &Origin::new("analyst", ""), "t", false)
        .unwrap()
    {
        c2wall_coordinator::core::Published::Version(v) => v.version,
        other => panic!("{other:?}"),
    }
}

fn copy_store(from: &Path, to: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{ext}", from.display()));
        let t = PathBuf::from(format!("{}{ext}", to.display()));
        let _ = std::fs::remove_file(&t);
        if f.exists() {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

fn damaged(r: Result<std::sync::Arc<Coordinator>, CoordError>) -> String {
    match r {
        Err(e @ CoordError::Damaged(_)) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a damaged store was opened"),
    }
}

#[test]
fn a_changed_record_is_refused_at_start() {
    let d = dir("record");
    let db = d.0.join("c.db");
    let c = open(&db, None).unwrap();
    for h in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        publish(&c, h);
    }
    drop(c);
    // A clean restart passes.
    drop(open(&db, None).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n = conn
        .execute("DELETE FROM records WHERE key LIKE '192.0.2.2/32%'", [])
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    let e = damaged(open(&db, None));
    assert!(
        e.contains("differs from the digest version 3 recorded"),
        "{e}"
    );
    assert!(e.contains("--recover-store"), "{e}");
}

#[test]
fn an_empty_or_older_store_is_refused_and_recovery_moves_the_lineage() {
    let d = dir("older");
    let db = d.0.join("c.db");
    let old_copy = d.0.join("backup.db");
    let c = open(&db, None).unwrap();
    publish(&c, "192.0.2.1");
    publish(&c, "192.0.2.2");
    let lineage = c.lineage().0;
    drop(c);
    copy_store(&db, &old_copy);
    let c = open(&db, None).unwrap();
    for h in ["192.0.2.3", "192.0.2.4", "192.0.2.5"] {
        publish(&c, h);
    }
    assert_eq!(c.latest_version(), 5);
    drop(c);

    // The backup (version 2) put back: versions 3..=5 were acknowledged.
    copy_store(&old_copy, &db);
    let e = damaged(open(&db, None));
    assert!(e.contains("versions 3..=5 were acknowledged"), "{e}");

    // A store re-created empty (the file deleted): another lineage.
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let e = damaged(open(&db, None));
    assert!(e.contains("the store was replaced or re-created"), "{e}");

    // The operator recovers from the backup: a new lineage, with a move
    // from the old one that covers every version it acknowledged.
    copy_store(&old_copy, &db);
    let c = open(&db, Some("restored from the nightly backup")).unwrap();
    let (new, moved) = c.lineage();
    let moved = moved.expect("a move");
    assert_ne!(new, lineage);
    assert_eq!(moved.from_lineage, lineage);
    assert_eq!(moved.from_version, 5);
    assert_eq!(moved.to_lineage, new);
    assert_eq!(c.latest_version(), 2);
    let audit = c.audit_log(0, 1).unwrap();
    assert_eq!(audit[0].action, "recover");
    assert_eq!(audit[0].reason, "restored from the nightly backup");
    // Versions go on in the new lineage; the next start is clean.
    assert_eq!(publish(&c, "192.0.2.9"), 3);
    drop(c);
    let c = open(&db, None).unwrap();
    assert_eq!(c.lineage().0, new);
}

/// A healthy store is never refused for timing: an entry whose window closed
/// before the last version, with the expiry worker not yet run, is still in
/// that version's effective set. The check covers the stored records, so the
/// store opens, and the expiry becomes the next version.
#[test]
fn an_expiry_not_yet_applied_is_no_damage() {
    let d = dir("expiry");
    let db = d.0.join("c.db");
    let c = open(&db, None).unwrap();
    let e = pb::Entry {
        key: Some(pb::EntryKey {
            prefix: "192.0.2.7".into(),
            ..Default::default()
        }),
        source: "feed".into(),
        valid_until: c2wall_coordinator::core::now() + 1,
        ..Default::default()
    };
    let r = c2wall_model::Record::try_from(&e).unwrap();
    c.publish(
        vec![r],
        vec![],
        &Origin::new("analyst", ""),
        "short-lived",
        false,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Expired, but no tick ran: the next version still lists it as effective.
    publish(&c, "192.0.2.8");
    drop(c);
    let c = open(&db, None).expect("a healthy store opens");
    assert_eq!(c.latest_version(), 2);
    let v = c.tick().unwrap().expect("the expiry is the next version");
    assert_eq!((v.version, v.removals), (3, 1));
}
