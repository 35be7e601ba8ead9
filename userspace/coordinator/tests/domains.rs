//! Domain entries through the gRPC API: normalised, versioned and synced
//! like prefixes, explained by name, and kept off public suffixes and
//! protected names.

mod common;

use c2wall_coordinator::guards::{GuardConfig, SourceFloor};
use c2wall_proto::v1 as pb;
use c2wall_proto::v1::sync_message::Kind;
use common::*;
use tonic::Code;

async fn refused(r: &Rig, e: pb::Entry) -> tonic::Status {
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("192.0.2.1"), e],
            ..Default::default()
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn domains_are_normalised_listed_synced_explained_and_withdrawn() {
    let r = rig("domains-flow").await;
    let v = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: vec![
                domain("Evil.EXAMPLE."),
                domain("*.cc.example"),
                domain("*.Bücher.example"),
                entry("192.0.2.1"),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.version, 1);
    let l = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<(String, String)> = l
        .entries
        .iter()
        .map(|e| {
            let k = e.key.clone().unwrap();
            (k.prefix, k.domain)
        })
        .collect();
    // Prefixes first, then names in order of the name; normalised (case,
    // final dot, IDNA).
    assert_eq!(
        keys,
        [
            ("192.0.2.1/32".into(), String::new()),
            (String::new(), "*.cc.example".into()),
            (String::new(), "evil.example".into()),
            (String::new(), "*.xn--bcher-kva.example".into()),
        ]
    );
    // The same signed stream carries them.
    let mut s = r.subscribe(0, vec![], false).await;
    let Kind::Snapshot(snap) = next(&mut s).await else {
        panic!("snapshot first")
    };
    assert_eq!(snap.version, 1);
    assert_eq!(
        snap.entries
            .iter()
            .filter(|e| !e.key.as_ref().unwrap().domain.is_empty())
            .count(),
        3
    );
    // The digest an agent recomputes from the entries it received is the
    // one the coordinator sent: domain entries verify like prefixes.
    let entries: Vec<c2wall_model::Entry> =
        c2wall_model::wire::records_from_wire(&snap.entries, "entries")
            .unwrap()
            .into_iter()
            .map(|r| r.entry)
            .collect();
    assert_eq!(
        c2wall_model::SetDigest::of(&entries).to_bytes(),
        snap.digest
    );
    // Explain by name: the exact entry, then wildcards from the name up.
    let ex = r
        .publisher()
        .explain(pb::ExplainRequest {
            address: "c2.cc.example".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = ex
        .matches
        .iter()
        .map(|e| e.key.as_ref().unwrap().domain.as_str())
        .collect();
    assert_eq!(names, ["*.cc.example"]);
    let ex = r
        .publisher()
        .explain(pb::ExplainRequest {
            address: "www.evil.example".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ex.matches.is_empty(), "an exact entry does not cover below");
    // Withdrawn by name, in any spelling.
    r.publisher()
        .publish(pb::PublishRequest {
            withdrawals: vec![pb::Withdrawal {
                key: Some(domain_key("EVIL.example")),
                source: String::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let ex = r
        .publisher()
        .explain(pb::ExplainRequest {
            address: "evil.example".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ex.matches.is_empty());
    assert_eq!(ex.version, 2);
}

#[tokio::test]
async fn bad_names_and_domain_entries_with_ports_are_refused_naming_the_field() {
    let r = rig("domains-bad").await;
    for (name, want) in [
        ("ev il.example", "label `ev il` holds ` `"),
        ("a..example", "is empty"),
        ("www.*.example", "wildcard"),
        ("-x.example", "starts or ends with `-`"),
    ] {
        let e = refused(&r, domain(name)).await;
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        assert!(
            e.message().starts_with("upserts[1].key.domain") && e.message().contains(want),
            "{name}: {}",
            e.message()
        );
    }
    let mut with_port = domain("evil.example");
    with_port.key.as_mut().unwrap().protocol = pb::Protocol::Tcp as i32;
    with_port.key.as_mut().unwrap().port = 443;
    let e = refused(&r, with_port).await;
    assert!(
        e.message().contains("no protocol or port"),
        "{}",
        e.message()
    );
    let mut with_direction = domain("evil.example");
    with_direction.direction = pb::Direction::To as i32;
    let e = refused(&r, with_direction).await;
    assert!(
        e.message().contains("cannot carry a direction"),
        "{}",
        e.message()
    );
    let mut both = domain("evil.example");
    both.key.as_mut().unwrap().prefix = "192.0.2.9".into();
    let e = refused(&r, both).await;
    assert!(
        e.message().contains("both prefix and domain"),
        "{}",
        e.message()
    );
    assert_eq!(
        r.coord.latest_version(),
        0,
        "nothing of a refused batch applied"
    );
}

#[tokio::test]
async fn public_suffixes_protected_names_and_shallow_wildcards_are_refused() {
    let r = rig("domains-guards").await;
    let mut cfg = GuardConfig {
        breaker_entries: usize::MAX,
        ..Default::default()
    };
    cfg.protected_domains.push("isp.example".into());
    cfg.sources.insert(
        "cautious".into(),
        SourceFloor {
            min_wildcard_labels: Some(2),
            ..Default::default()
        },
    );
    r.coord.set_guard_config(cfg);
    for (name, want) in [
        ("com", "single label"),
        ("co.jp", "public suffix (`co.jp`"),
        ("*.co.jp", "public suffix (`co.jp`"),
        // The list's private section: blocking it blocks every user's site.
        ("*.github.io", "public suffix (`github.io`"),
        ("*.example", "single label"),
        ("google.com", "protected domain google.com"),
        ("accounts.google.com", "protected domain google.com"),
        ("*.yahoo.co.jp", "protected domain yahoo.co.jp"),
        ("portal.isp.example", "protected domain isp.example"),
    ] {
        let e = refused(&r, domain(name)).await;
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        assert!(
            e.message().starts_with("upserts[1].key.domain") && e.message().contains(want),
            "{name}: {}",
            e.message()
        );
    }
    // A per-source floor on wildcards.
    let mut shallow = domain("*.evil.example");
    shallow.source = "cautious".into();
    let e = refused(&r, shallow.clone()).await;
    assert!(
        e.message().contains("min_wildcard_labels"),
        "{}",
        e.message()
    );
    let mut deep = domain("*.cc.evil.example");
    deep.source = "cautious".into();
    shallow.source = "feed-a".into();
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![deep, shallow, domain("evil.co.jp")],
            ..Default::default()
        })
        .await
        .unwrap();
    // An admin protects a name: entries below it are refused from then on,
    // and protecting a name that listed entries cover is refused, naming them.
    r.publisher()
        .protect(pb::ProtectRequest {
            domain: "Partner.Example".into(),
            why: "a partner's portal".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = refused(&r, domain("login.partner.example")).await;
    assert!(
        e.message()
            .contains("protected domain partner.example (a partner's portal)"),
        "{}",
        e.message()
    );
    let e = r
        .publisher()
        .protect(pb::ProtectRequest {
            domain: "www.cc.evil.example".into(),
            why: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("*.cc.evil.example"), "{}", e.message());
    let p = r
        .publisher()
        .protected(pb::ProtectedRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(p
        .prefixes
        .iter()
        .any(|p| p.domain == "partner.example" && p.prefix.is_empty()));
    // The config's names are listed too, and are removed in the config only.
    assert!(p
        .prefixes
        .iter()
        .any(|p| p.domain == "isp.example" && p.why.contains("protected_domains")));
    let e = r
        .publisher()
        .protect(pb::ProtectRequest {
            domain: "google.com".into(),
            remove: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("remove it there"), "{}", e.message());
}
