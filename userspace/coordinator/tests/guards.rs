//! Guards against over-blocking and the audit log, through the gRPC API.

mod common;

use c2wall_coordinator::guards::GuardConfig;
use c2wall_proto::v1 as pb;
use c2wall_proto::v1::sync_message::Kind;
use common::*;
use tonic::Code;

fn entries(prefixes: &[String]) -> Vec<pb::Entry> {
    prefixes.iter().map(|p| entry(p)).collect()
}

fn hosts(net: u8, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("192.0.{net}.{i}")).collect()
}

#[tokio::test]
async fn dangerous_prefixes_are_refused_with_the_reason_named() {
    let r = rig("guards-refuse").await;
    for (prefix, want) in [
        ("0.0.0.0/0", "default route"),
        ("::/0", "default route"),
        ("127.0.0.1", "loopback"),
        (
            "8.8.8.8",
            "protected prefix 8.8.8.8/32 (public resolver (Google))",
        ),
        ("8.8.0.0/16", "protected prefix"),
        ("10.0.0.0/8", "shorter than the /16 floor"),
        ("2001::/20", "shorter than the /32 floor"),
    ] {
        let e = r
            .publisher()
            .publish(pb::PublishRequest {
                upserts: vec![entry("192.0.2.1"), entry(prefix)],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{prefix}");
        assert!(
            e.message().starts_with("upserts[1].key.prefix") && e.message().contains(want),
            "{prefix}: {}",
            e.message()
        );
    }
    let l = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap();
    assert!(
        l.into_inner().entries.is_empty(),
        "nothing of the refused batches applied"
    );
    // An admin protects the ISP's own range; entries inside are refused from then on.
    r.publisher()
        .protect(pb::ProtectRequest {
            prefix: "198.51.100.0/24".into(),
            why: "ISP core".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("198.51.100.7")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("198.51.100.0/24 (ISP core)"),
        "{}",
        e.message()
    );
    // Protecting a range that listed entries overlap is refused, naming them.
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("203.0.113.66")],
            ..Default::default()
        })
        .await
        .unwrap();
    let e = r
        .publisher()
        .protect(pb::ProtectRequest {
            prefix: "203.0.113.0/24".into(),
            why: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("203.0.113.66/32"), "{}", e.message());
    // A feed import leaves out what the guards refuse and imports the rest.
    let o = r
        .publisher()
        .import(tokio_stream::iter(vec![pb::ImportChunk {
            source: "feed-x".into(),
            entries: entries(&["192.0.2.9".into(), "8.8.4.4".into(), "10.0.0.0/8".into()]),
            end: true,
            ..Default::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((o.added, o.refused), (1, 2));
    assert!(
        o.refusals.iter().any(|r| r.contains("8.8.4.4/32")),
        "{:?}",
        o.refusals
    );
}

#[tokio::test]
async fn a_large_change_is_held_until_an_admin_confirms_and_everything_is_audited() {
    let r = rig("guards-breaker").await;
    r.coord.set_guard_config(GuardConfig {
        breaker_entries: 10,
        breaker_share: 0.3,
        ..Default::default()
    });
    let v1 = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: entries(&hosts(2, 40)),
            reason: "initial".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        v1.pending_id, 0,
        "40 new entries on an empty list are held too"
    );
    r.publisher()
        .resolve_pending(pb::ResolvePendingRequest {
            id: v1.pending_id,
            confirm: true,
            reason: "initial load checked".into(),
        })
        .await
        .unwrap();
    // +20 on 40 (50%): held, nothing applied.
    let held = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: entries(&hosts(3, 20)),
            reason: "big batch".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.version, 0);
    assert!(
        held.pending_summary
            .contains("+20 -0 entries on a list of 40 (50%)"),
        "{}",
        held.pending_summary
    );
    let count = |r: &Rig| {
        let mut p = r.publisher();
        async move {
            p.list(pb::ListRequest::default())
                .await
                .unwrap()
                .into_inner()
                .entries
                .len()
        }
    };
    assert_eq!(count(&r).await, 40);
    let pending = r
        .publisher()
        .pending(pb::PendingRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.changes.len(), 1);
    assert_eq!(pending.changes[0].reason, "big batch");
    // +5: below the breaker, applied at once.
    let small = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: entries(&hosts(4, 5)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(small.version, 0);
    // Confirmed: applied as a new version.
    let done = r
        .publisher()
        .resolve_pending(pb::ResolvePendingRequest {
            id: held.pending_id,
            confirm: true,
            reason: "checked the feed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(done.version > small.version);
    assert_eq!(count(&r).await, 65);
    // Confirming twice is refused.
    let e = r
        .publisher()
        .resolve_pending(pb::ResolvePendingRequest {
            id: held.pending_id,
            confirm: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The audit log has every step, newest first, with who and from where.
    let audit = r
        .publisher()
        .audit(pb::AuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["confirm", "confirm", "publish", "hold", "confirm", "confirm", "hold"],
        "{audit:?}"
    );
    assert!(audit.iter().all(|e| e.actor == "anonymous"), "{audit:?}");
    assert!(audit[0].detail.contains("pending #") && audit[0].reason == "checked the feed");
    assert!(audit[1].detail.starts_with("version") && audit[1].reason == "big batch");
}

#[tokio::test]
async fn the_audit_log_cannot_be_rewritten() {
    let path = store_path("guards-audit");
    let r = rig_with(path.clone(), |_| {}, 16).await;
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("192.0.2.1")],
            ..Default::default()
        })
        .await
        .unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
    ] {
        let e = db.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    let n: i64 = db
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn monitor_first_entries_are_promoted_on_schedule_unless_objected_and_audited() {
    let r = rig("guards-soak").await;
    let soon = c2wall_coordinator::core::now() + 1;
    let soaking = |p: &str| {
        let mut e = entry(p);
        e.action = pb::Action::Monitor as i32;
        e.promote_at = soon;
        e
    };
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![soaking("192.0.2.1"), soaking("192.0.2.2")],
            ..Default::default()
        })
        .await
        .unwrap();
    // A promotion on a drop entry makes no sense: refused.
    let mut bad = soaking("192.0.2.3");
    bad.action = pb::Action::Drop as i32;
    let e = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: vec![bad],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("upserts[0].promote_at"),
        "{}",
        e.message()
    );
    let mut live = r.subscribe(0, vec![], false).await;
    let Kind::Snapshot(s) = next(&mut live).await else {
        panic!()
    };
    assert!(s
        .entries
        .iter()
        .all(|e| e.action == pb::Action::Monitor as i32));
    // Someone objects to one of them.
    r.publisher()
        .object(pb::ObjectRequest {
            key: Some(key("192.0.2.2")),
            reason: "that is our partner's mail relay".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let Kind::Delta(_) = next(&mut live).await else {
        panic!("the objection is a version (the record changed)")
    };
    assert!(r.coord.promote_due().unwrap().is_none(), "not due yet");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let v = r.coord.promote_due().unwrap().expect("a promotion version");
    assert_eq!((v.actor.as_str(), v.upserts), ("promotion", 1));
    let Kind::Delta(d) = next(&mut live).await else {
        panic!()
    };
    assert_eq!(d.upserts.len(), 1);
    assert_eq!(d.upserts[0].key.as_ref().unwrap().prefix, "192.0.2.1/32");
    assert_eq!(d.upserts[0].action, pb::Action::Drop as i32);
    assert!(r.coord.promote_due().unwrap().is_none(), "promoted once");
    let got = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key("192.0.2.2")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.effective.unwrap().action, pb::Action::Monitor as i32);
    let audit = r
        .publisher()
        .audit(pb::AuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("promote", "promotion"),
            ("object", "anonymous"),
            ("publish", "anonymous")
        ]
    );
}

#[tokio::test]
async fn a_held_import_is_superseded_by_the_next_one_of_its_source() {
    let r = rig("guards-import").await;
    r.coord.set_guard_config(GuardConfig {
        breaker_entries: 5,
        breaker_share: 0.1,
        ..Default::default()
    });
    let import = |source: &str, net: u8| {
        let mut p = r.publisher();
        let chunk = pb::ImportChunk {
            source: source.into(),
            entries: entries(&hosts(net, 10)),
            end: true,
            ..Default::default()
        };
        async move {
            p.import(tokio_stream::iter(vec![chunk]))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = import("feed-a", 2).await;
    assert_ne!(first.pending_id, 0, "10 entries on an empty list: held");
    let other = import("feed-b", 3).await;
    let second = import("feed-a", 4).await;
    let pending = r
        .publisher()
        .pending(pb::PendingRequest {})
        .await
        .unwrap()
        .into_inner()
        .changes;
    let ids: Vec<u64> = pending.iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [other.pending_id, second.pending_id],
        "feed-a's first is superseded"
    );
    // Confirming the held import applies the whole set of its source.
    r.publisher()
        .resolve_pending(pb::ResolvePendingRequest {
            id: second.pending_id,
            confirm: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let l = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap();
    let listed: Vec<String> = l
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.key.unwrap().prefix)
        .collect();
    assert_eq!(listed.len(), 10);
    assert!(
        listed.iter().all(|p| p.starts_with("192.0.4.")),
        "{listed:?}"
    );
}
