//! One conformance suite, two stores: every check runs on SQLite and on a
//! real PostgreSQL server (started by the test, see common/pg.rs), through
//! the coordinator as the services use it, plus what only the database
//! itself can prove (the audit log refuses rewrites).

mod common;

use c2wall_coordinator::{
    core::{Coordinator, Origin, Published, Withdrawal},
    store::Location,
    CoordError,
};
use c2wall_model::{HeldState, Mode, Record, Scope};
use c2wall_proto::v1 as pb;
use common::pg::TempPg;

fn record(prefix: &str) -> Record {
    Record::try_from(&common::entry(prefix)).unwrap()
}

fn op() -> Origin {
    Origin::new("alice", "127.0.0.1:1")
}

/// The two backends: (name, a way to open the same store again).
fn backends(tag: &str) -> Vec<(&'static str, Location, Option<TempPg>)> {
    let pg = TempPg::start(tag);
    let url = pg.database(&format!("c2wall_{tag}"));
    vec![
        ("sqlite", Location::Sqlite(common::store_path(tag)), None),
        ("postgres", Location::Postgres(url), Some(pg)),
    ]
}

fn publish(c: &Coordinator, prefixes: &[&str]) -> u64 {
    match c
        .publish(
            prefixes.iter().map(|p| record(p)).collect(),
            vec![],
            &op(),
            "test",
            false,
        )
        .unwrap()
    {
        Published::Version(v) => v.version,
        Published::Held(h) => panic!("held: {}", h.summary),
    }
}

#[test]
fn versions_history_rollback_and_reopen_agree_on_both_stores() {
    for (name, loc, _pg) in backends("versions") {
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        assert_eq!(
            publish(&c, &["192.0.2.0/24", "198.51.100.7/32"]),
            1,
            "{name}"
        );
        let v2 = c
            .publish(
                vec![],
                vec![Withdrawal {
                    identity: record("192.0.2.0/24").identity(),
                    source: None,
                }],
                &op(),
                "gone",
                false,
            )
            .unwrap();
        assert!(
            matches!(v2, Published::Version(ref v) if v.version == 2),
            "{name}: {v2:?}"
        );
        assert_eq!(c.rollback(1, &op(), "back").unwrap().version, 3, "{name}");
        let h = c.history(0, 10).unwrap();
        assert_eq!(
            h.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![3, 2, 1],
            "{name}"
        );
        assert_eq!(
            h[0].digest, h[2].digest,
            "{name}: the rollback restores v1's set"
        );
        let digest = c.digest();
        c.compact(1).unwrap();
        drop(c);
        // Reopened: the same set, version and digest, and it checks clean.
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        assert_eq!((c.latest_version(), c.digest()), (3, digest), "{name}");
        let s = loc.open().unwrap();
        assert_eq!(s.deltas_after(0).unwrap(), None, "{name}: compacted log");
        assert_eq!(
            s.deltas_after(2).unwrap().map(|d| d.len()),
            Some(1),
            "{name}"
        );
        assert_eq!(
            s.changes_after(2).unwrap().map(|c| c.len()),
            Some(1),
            "{name}"
        );
        assert_eq!(s.log_start().unwrap(), 3, "{name}");
    }
}

#[test]
fn a_version_that_does_not_follow_the_latest_is_refused_on_both_stores() {
    for (name, loc, _pg) in backends("gap") {
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        publish(&c, &["192.0.2.0/24"]);
        let mut s = loc.open().unwrap();
        let commit = c2wall_coordinator::store::Commit {
            info: c2wall_coordinator::store::VersionInfo {
                version: 3,
                digest: vec![0; 32],
                created_at: 1,
                actor: "x".into(),
                reason: String::new(),
                upserts: 0,
                removals: 0,
                records_digest: None,
            },
            changes: vec![],
            delta: vec![],
            audit: op().audit(1, "publish", "", ""),
        };
        match s.append(&commit) {
            Err(CoordError::Behind { latest: 1 }) => {}
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(s.history(0, 5).unwrap().len(), 1, "{name}: nothing written");
    }
}

#[test]
fn guards_audit_pending_modes_agents_and_lineage_on_both_stores() {
    for (name, loc, _pg) in backends("guards") {
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        // Seeded with the public resolvers.
        assert!(
            c.protected()
                .iter()
                .any(|(p, _)| p.to_string() == "8.8.8.8/32"),
            "{name}"
        );
        c.protect("203.0.113.0/24".parse().unwrap(), Some("ours"), &op(), "r")
            .unwrap();
        assert!(
            c.guard_check(&"203.0.113.5/32".parse().unwrap(), "feodo")
                .is_some(),
            "{name}"
        );
        // A held change, rejected.
        c.set_guard_config(c2wall_coordinator::guards::GuardConfig {
            breaker_entries: 1,
            breaker_share: 0.0,
            ..Default::default()
        });
        let held = match c
            .publish(
                vec![record("192.0.2.0/24"), record("192.0.2.1/32")],
                vec![],
                &op(),
                "big",
                false,
            )
            .unwrap()
        {
            Published::Held(h) => h,
            v => panic!("{name}: {v:?}"),
        };
        assert_eq!(c.pending(None).unwrap().len(), 1, "{name}");
        c.resolve_pending(held.id, false, &op(), "no").unwrap();
        let closed = c.pending(Some(held.id)).unwrap();
        assert_eq!(closed[0].state, HeldState::Rejected, "{name}");
        assert!(c.pending(None).unwrap().is_empty(), "{name}");
        // The kill switch.
        c.set_mode(Some(Mode::Monitor), &Scope::Fleet, &op(), "r")
            .unwrap();
        let m = c
            .set_mode(Some(Mode::Off), &Scope::Agent("edge-1".into()), &op(), "r")
            .unwrap();
        assert_eq!(
            (m.fleet, m.for_agent("edge-1")),
            (Some(Mode::Monitor), Some(Mode::Off)),
            "{name}"
        );
        let m = c.set_mode(None, &Scope::Fleet, &op(), "r").unwrap();
        assert_eq!(m.fleet, None, "{name}");
        // Agents and sightings.
        c.report(&pb::AgentStatus {
            agent_id: "edge-1".into(),
            applied_version: 0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.agents().unwrap().len(), 1, "{name}");
        let s = pb::Sighting {
            subscriber: "p-1".into(),
            entry: Some(c2wall_model::wire::identity_to_wire(
                &record("192.0.2.0/24").identity(),
            )),
            ip_protocol: 6,
            cc_port: 443,
            direction: 1,
            dropped: true,
            first_seen: 100,
            last_seen: 200,
            count: 2,
        };
        c.report_sightings("edge-1", std::slice::from_ref(&s))
            .unwrap();
        c.report_sightings(
            "edge-1",
            &[pb::Sighting {
                first_seen: 50,
                last_seen: 300,
                count: 3,
                ..s
            }],
        )
        .unwrap();
        let got = loc.open().unwrap().sightings(0, &|_| true, 10).unwrap();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(
            (got[0].1.first_seen, got[0].1.last_seen, got[0].1.count),
            (50, 300, 5),
            "{name}"
        );
        // Every change is in the audit log, newest first.
        let actions: Vec<String> = c
            .audit_log(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for a in ["protect", "hold", "reject", "mode"] {
            assert!(
                actions.contains(&a.to_string()),
                "{name}: {a} missing from {actions:?}"
            );
        }
        drop(c);
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        assert!(
            c.protected()
                .iter()
                .any(|(p, _)| p.to_string() == "203.0.113.0/24"),
            "{name}"
        );
        assert_eq!(
            c.modes().borrow().for_agent("edge-1"),
            Some(Mode::Off),
            "{name}"
        );
        assert_eq!(c.lineage().0.len(), 16, "{name}");
    }
}

#[test]
fn the_database_itself_refuses_to_rewrite_the_audit_log() {
    for (name, loc, pg) in backends("audit") {
        let c = Coordinator::open(loc.open().unwrap(), 64).unwrap();
        publish(&c, &["192.0.2.0/24"]);
        let refused = match (&loc, &pg) {
            (Location::Sqlite(path), _) => {
                let db = rusqlite::Connection::open(path).unwrap();
                [
                    db.execute("UPDATE audit SET reason = 'x'", [])
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    db.execute("DELETE FROM audit", [])
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                ]
            }
            (Location::Postgres(_), Some(pg)) => {
                let db = "c2wall_audit";
                [
                    pg.sql(db, "UPDATE audit SET reason = 'x'").map(|_| ()),
                    pg.sql(db, "DELETE FROM audit").map(|_| ()),
                ]
            }
            _ => unreachable!(),
        };
        for r in refused {
            let e = r.expect_err(name);
            assert!(e.contains("append-only"), "{name}: {e}");
        }
        assert_eq!(c.audit_log(0, 10).unwrap().len(), 1, "{name}");
        if let Some(pg) = &pg {
            let e = pg
                .sql("c2wall_audit", "TRUNCATE audit")
                .expect_err("truncate");
            assert!(e.contains("append-only"), "{e}");
        }
    }
}

#[test]
fn a_newer_schema_or_an_unreachable_database_is_refused_naming_it() {
    let pg = TempPg::start("schema");
    let url = pg.database("c2wall_schema");
    drop(Location::Postgres(url.clone()).open().unwrap());
    pg.sql(
        "c2wall_schema",
        "INSERT INTO c2wall_schema (version) VALUES (99)",
    )
    .unwrap();
    let e = Location::Postgres(url)
        .open()
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("version 99") && e.contains("this binary's 2"),
        "{e}"
    );
    // Nothing listens there: an error naming the place, within seconds.
    let dead = format!(
        "postgres://c2wall@/nowhere?host={}/gone",
        pg.socket_dir().display()
    );
    let t = std::time::Instant::now();
    let e = Location::Postgres(dead)
        .open()
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("/gone"), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn the_replica_example_in_deploy_names_its_database() {
    use c2wall_coordinator::config::{CoordArgs, Settings};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/coordinator-replica.toml");
    let s = Settings::resolve(&CoordArgs {
        config: Some(path),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        s.store,
        Location::Postgres(
            "postgres://c2wall@db.centre.example:5432/c2wall?connect_timeout=5".into()
        )
    );
    assert!(s.signing_key.is_some());
    // A flag wins over the file, and `sqlite:` keeps SQLite.
    let s = Settings::resolve(&CoordArgs {
        config: Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/coordinator-replica.toml"),
        ),
        store: Some("sqlite:/tmp/x.db".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.store, Location::Sqlite("/tmp/x.db".into()));
}
