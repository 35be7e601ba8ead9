//! Following an upstream coordinator, in-process (no root): a centre
//! coordinator served on a loopback port, an ISP coordinator following it
//! through `[[upstream]]` (the shared sync client), both on SQLite in temp
//! files. Upstream snapshot and deltas become upstream-source records with
//! provenance; a reconnect resumes with deltas; a version signed by an
//! untrusted key is refused and the last verified set kept; a protected
//! range vetoes an upstream entry and its removal restores it; the action
//! override with a soak; the change breaker holds a large upstream change;
//! a restart with the upstream away keeps the upstream entries; sightings
//! go upstream pseudonymised again when asked. (Views: upstream_view.rs.)

mod common;

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use c2wall_coordinator::core::Origin;
use c2wall_model::Action;
use c2wall_proto::v1 as pb;
use common::upstream::{
    coordinator, follow, keys, listed, publish, publisher, serve, until, upstream_records, Dir,
    Relay,
};

#[tokio::test]
async fn upstream_versions_become_records_with_provenance_and_resume_by_deltas() {
    let dir = Dir::new("up-follow");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    let mut p = publisher(port).await;
    let v1 = publish(&mut p, &["192.0.2.1", "198.51.100.0/24"]).await;

    let relay = Relay::new(port).await;
    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let board = follow(&isp, relay.port, &public, &dir, "");
    until("the snapshot is taken", || {
        upstream_records(&isp).len() == 2
    })
    .await;
    let r = upstream_records(&isp)
        .into_iter()
        .find(|r| r.entry.listed_prefix().unwrap().to_string() == "192.0.2.1/32")
        .unwrap();
    assert_eq!((r.category.as_str(), r.confidence), ("mirai", 90));
    assert_eq!(r.reference, "ticket for 192.0.2.1");
    assert_eq!(r.chain.len(), 1);
    let hop = &r.chain[0];
    assert_eq!(
        (hop.upstream.as_str(), hop.source.as_str(), hop.version),
        ("centre", "feed-a", v1)
    );
    assert!(!hop.created_by.is_empty() && hop.created_at > 0, "{hop:?}");
    // The ISP's own version, signed with its own key, lists it.
    assert!(isp.latest_version() >= 1);

    // Deltas while connected.
    let v2 = publish(&mut p, &["203.0.113.7"]).await;
    until("a delta is taken", || listed(&isp, "203.0.113.7/32")).await;
    let f = &board.followers[0];
    assert_eq!(f.status.applied_version.load(Relaxed), v2);
    let snapshots = f.status.snapshots.load(Relaxed);
    // The centre goes away; the ISP keeps its entries; a withdrawal made
    // meanwhile arrives as a delta when it is back.
    relay.switch(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream_records(&isp).len(), 3, "fail-static");
    p.publish(pb::PublishRequest {
        withdrawals: vec![pb::Withdrawal {
            key: Some(common::key("192.0.2.1")),
            source: "feed-a".into(),
        }],
        reason: "false positive".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(listed(&isp, "192.0.2.1/32"), "not while the centre is away");
    relay.switch(port);
    until("the withdrawal arrives", || {
        !listed(&isp, "192.0.2.1/32") && upstream_records(&isp).len() == 2
    })
    .await;
    assert_eq!(
        f.status.snapshots.load(Relaxed),
        snapshots,
        "resumed with deltas, no second snapshot"
    );
    // The upstream's records are refused to publishers here.
    assert!(isp
        .publish(
            vec![],
            vec![c2wall_coordinator::core::Withdrawal {
                identity: upstream_records(&isp)[0].identity(),
                source: None,
            }],
            &Origin::internal("t"),
            "t",
            false,
        )
        .is_err());
}

#[tokio::test]
async fn a_version_signed_by_an_untrusted_key_is_refused_and_the_last_verified_set_kept() {
    let dir = Dir::new("up-tamper");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    publish(&mut publisher(port).await, &["192.0.2.1"]).await;
    let relay = Relay::new(port).await;
    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let board = follow(&isp, relay.port, &public, &dir, "");
    until("followed", || listed(&isp, "192.0.2.1/32")).await;
    // An impostor on the centre's address, signing with a key nobody trusts.
    let impostor = coordinator(&dir, "impostor", &keys().0, usize::MAX);
    let (iport, _istop) = serve(impostor.clone(), 0).await;
    publish(&mut publisher(iport).await, &["203.0.113.9"]).await;
    relay.switch(iport);
    let f = &board.followers[0];
    until("the impostor's version is refused", || {
        f.status.signature_failures.load(Relaxed) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(listed(&isp, "192.0.2.1/32"), "the last verified set stays");
    assert!(!listed(&isp, "203.0.113.9/32"));
    assert_eq!(
        board.feed_states()[0].upstream_version,
        f.status.applied_version.load(Relaxed)
    );
}

#[tokio::test]
async fn a_protected_range_vetoes_an_upstream_entry_until_it_is_removed() {
    let dir = Dir::new("up-veto");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    publish(&mut publisher(port).await, &["192.0.2.1", "203.0.113.5"]).await;
    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let board = follow(&isp, port, &public, &dir, "");
    until("followed", || upstream_records(&isp).len() == 2).await;
    // Protecting a range an upstream entry is in is allowed (it is not the
    // ISP's to withdraw) and vetoes the entry.
    let admin = Origin::internal("admin:alice");
    isp.protect(
        "203.0.113.0/24".parse().unwrap(),
        Some("our customer portal"),
        &admin,
        "ours",
    )
    .unwrap();
    until("vetoed", || !listed(&isp, "203.0.113.5/32")).await;
    let v = board.vetoes_covering(&"203.0.113.5/32".parse().unwrap());
    assert_eq!(v.len(), 1);
    assert!(v[0].reason.contains("203.0.113.0/24"), "{}", v[0].reason);
    let audit = isp.audit_log(0, 20).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "veto" && e.detail.contains("203.0.113.5")),
        "the veto is audited"
    );
    assert_eq!(board.feed_states()[0].vetoed, 1);
    // Removing the protection enforces it again.
    isp.protect("203.0.113.0/24".parse().unwrap(), None, &admin, "done")
        .unwrap();
    until("restored", || listed(&isp, "203.0.113.5/32")).await;
    assert!(board
        .vetoes_covering(&"203.0.113.5/32".parse().unwrap())
        .is_empty());
}

#[tokio::test]
async fn monitor_first_with_a_soak_and_the_breaker_holding_a_large_change() {
    let dir = Dir::new("up-policy");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    let mut p = publisher(port).await;
    publish(&mut p, &["192.0.2.1"]).await;
    // Breaker: more than 5 entries and 10% of the list is held.
    let isp = coordinator(&dir, "isp", &keys().0, 5);
    let board = follow(
        &isp,
        port,
        &public,
        &dir,
        "action = \"monitor\"\nsoak = \"1h\"\n",
    );
    until("followed", || listed(&isp, "192.0.2.1/32")).await;
    let r = &upstream_records(&isp)[0];
    let now = c2wall_coordinator::core::now();
    assert_eq!(r.entry.action, Action::Monitor);
    let promote = r.promote_at.expect("a soak");
    assert!((now + 3500..=now + 3700).contains(&promote), "{promote}");

    let many: Vec<String> = (1..=50).map(|i| format!("198.51.100.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let v = publish(&mut p, &many).await;
    let f = &board.followers[0];
    until("held", || f.view.lock().unwrap().held.is_some()).await;
    assert_eq!(
        upstream_records(&isp).len(),
        1,
        "nothing applied while held"
    );
    let pending = isp.pending(None).unwrap();
    let held = pending.last().unwrap();
    assert!(
        held.reason
            .contains(&format!("upstream centre version {v}")),
        "{}",
        held.reason
    );
    assert!(board.feed_states()[0].last_error.contains("pending #"));
    isp.resolve_pending(held.id, true, &Origin::internal("admin:alice"), "ok")
        .unwrap();
    assert_eq!(upstream_records(&isp).len(), 51);
}

#[tokio::test]
async fn a_restart_with_the_upstream_away_keeps_enforcing_its_entries() {
    let dir = Dir::new("up-restart");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (centre_port, _stop) = serve(centre.clone(), 0).await;
    publish(
        &mut publisher(centre_port).await,
        &["192.0.2.1", "192.0.2.2"],
    )
    .await;
    let relay = Relay::new(centre_port).await;
    let port = relay.port;
    let isp_seed = keys().0;
    {
        let isp = coordinator(&dir, "isp", &isp_seed, usize::MAX);
        let board = follow(&isp, port, &public, &dir, "");
        until("followed", || upstream_records(&isp).len() == 2).await;
        drop(board);
    }
    relay.switch(0);
    // A new process: the store and the saved upstream set are all it has.
    let isp = coordinator(&dir, "isp", &isp_seed, usize::MAX);
    let board = follow(&isp, port, &public, &dir, "");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(upstream_records(&isp).len(), 2);
    let f = &board.followers[0];
    assert!(f.synced.lock().unwrap().set().version > 0, "the saved set");
}

#[tokio::test]
async fn sightings_of_upstream_entries_go_upstream_pseudonymised_again_when_asked() {
    let dir = Dir::new("up-sightings");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    publish(&mut publisher(port).await, &["192.0.2.1"]).await;
    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let _board = follow(&isp, port, &public, &dir, "share_sightings = \"1s\"\n");
    until("followed", || listed(&isp, "192.0.2.1/32")).await;
    let seen = |prefix: &str, subscriber: &str| pb::Sighting {
        subscriber: subscriber.into(),
        entry: Some(common::key(prefix)),
        count: 4,
        dropped: true,
        first_seen: c2wall_coordinator::core::now(),
        last_seen: c2wall_coordinator::core::now(),
        ..Default::default()
    };
    // An ISP edge agent's report: one upstream entry, one ISP-only entry.
    isp.report_sightings(
        "edge-1",
        &[
            seen("192.0.2.1", "p-0123456789ab"),
            seen("203.0.113.5", "p-0123456789ab"),
        ],
    )
    .unwrap();
    let centre_seen = || centre.sightings(None, None, 0, 100).unwrap();
    until("shared upstream", || !centre_seen().is_empty()).await;
    let got = centre_seen();
    assert_eq!(got.len(), 1, "only the upstream's entry: {got:?}");
    let (who, s) = &got[0];
    assert_eq!(who, "isp-a");
    assert_eq!(s.count, 4);
    assert!(s.subscriber.starts_with("p-") && s.subscriber != "p-0123456789ab");
    // The key that pseudonymises again stays with the ISP.
    assert!(std::fs::metadata(dir.0.join("upstream-centre.sightings.key")).is_ok());
}
