//! Domain entries through the tiers, in-process: the centre's domain entries
//! reach an ISP coordinator that follows it (and so the ISP's own RPZ zone,
//! which is built from its effective domain set), and a name the ISP
//! protects is vetoed there while the centre keeps listing it.

mod common;

use c2wall_coordinator::guards::GuardConfig;
use c2wall_proto::v1 as pb;
use common::domain;
use common::upstream::{coordinator, follow, keys, listed, publisher, serve, until, Dir};

#[tokio::test]
async fn centre_domains_reach_the_isp_and_its_protected_names_are_vetoed() {
    let dir = Dir::new("up-domains");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    let mut p = publisher(port).await;
    p.publish(pb::PublishRequest {
        upserts: vec![
            domain("evil.example"),
            domain("*.cc.example"),
            domain("login.partner.example"),
        ],
        ..Default::default()
    })
    .await
    .unwrap();

    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let mut cfg = GuardConfig {
        breaker_entries: usize::MAX,
        ..Default::default()
    };
    cfg.protected_domains.push("partner.example".into());
    isp.set_guard_config(cfg);
    let _board = follow(&isp, port, &public, &dir, "");
    until("the centre's names are taken", || {
        listed(&isp, "evil.example") && listed(&isp, "*.cc.example")
    })
    .await;
    let (_, names) = isp.rpz_set(false);
    let names: Vec<String> = names.iter().map(|(d, _, _)| d.to_string()).collect();
    assert_eq!(
        names,
        ["*.cc.example", "evil.example"],
        "the protected name is vetoed"
    );
    let (m, _) = isp.explain_name(&"a.cc.example".parse().unwrap());
    assert_eq!(m[0].source, "upstream:centre");
    assert_eq!(m[0].chain[0].source, "feed-a");

    // A withdrawal at the centre leaves the ISP's zone too.
    p.publish(pb::PublishRequest {
        withdrawals: vec![pb::Withdrawal {
            key: domain("evil.example").key,
            source: String::new(),
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    until("the withdrawal is taken", || !listed(&isp, "evil.example")).await;
    assert_eq!(isp.rpz_set(false).1.len(), 1);
}
