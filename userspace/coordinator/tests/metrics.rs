//! The coordinator's metrics: registered once, named by the conventions,
//! computed from the live state at scrape time.

mod common;

use std::sync::Arc;

use c2wall_coordinator::metrics::{Metrics, RpcTimer, StateCollector};
use c2wall_proto::v1 as pb;
use common::*;

#[tokio::test]
async fn metrics_follow_the_naming_rules_and_reflect_the_state() {
    let r = rig("metrics").await;
    let m = Arc::new(Metrics::new().unwrap());
    m.register(Box::new(StateCollector::new(r.coord.clone()).unwrap()))
        .unwrap();
    let timer = RpcTimer::new().unwrap();
    m.register(Box::new(timer.0.clone())).unwrap();
    timer.0.with_label_values(&["Publish"]).observe(0.002);
    let mut e = entry("192.0.2.1");
    e.category = "mirai".into();
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![e, entry("192.0.2.2")],
            ..Default::default()
        })
        .await
        .unwrap();
    let _sub = r.subscribe(0, vec![], false).await;
    r.coord
        .report(&pb::AgentStatus {
            agent_id: "edge-1".into(),
            applied_version: 0,
            ..Default::default()
        })
        .unwrap();
    let text = m.render();
    assert!(
        text.contains(
            "c2wall_coordinator_entries{action=\"drop\",category=\"mirai\",source=\"feed-a\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("c2wall_agent_lag_versions_bucket{le=\"0\"} 0"),
        "{text}"
    );
    assert!(text.contains("c2wall_agent_lag_versions_count 1"), "{text}");
    assert!(text.contains("c2wall_rpc_duration_seconds_count{method=\"Publish\"} 1"));
    // A second collector of the same names is refused (registered once).
    assert!(m
        .register(Box::new(StateCollector::new(r.coord.clone()).unwrap()))
        .is_err());
    for line in text.lines().filter(|l| l.starts_with("# HELP ")) {
        let mut f = line["# HELP ".len()..].splitn(2, ' ');
        let (name, help) = (f.next().unwrap(), f.next().unwrap_or(""));
        assert!(name.starts_with("c2wall_"), "{name}");
        assert!(!help.trim().is_empty(), "{name} has no help");
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[3] == "counter" {
            assert!(
                f[2].ends_with("_total"),
                "counter {} must end in _total",
                f[2]
            );
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(labels) = line.split_once('{').map(|(_, l)| l) {
            for v in labels.split('"').skip(1).step_by(2) {
                assert!(
                    v.parse::<std::net::IpAddr>().is_err(),
                    "address label: {line}"
                );
            }
        }
    }
}
