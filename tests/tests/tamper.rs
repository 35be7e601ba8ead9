//! A relay between coordinator and agent that adds an entry to the deltas
//! or the snapshots it passes on, with the digest fixed up: the agent, which
//! trusts the coordinator's signing key, refuses every forged version and
//! keeps enforcing the last verified list.

use std::time::{Duration, Instant};

use c2wall_e2e::{
    relay::{self, Tamper},
    require_root,
    topo::*,
};
use c2wall_proto::v1 as pb;

const RELAY: &str = "127.0.0.1:50061";

fn failures(topo: &Topo) -> f64 {
    topo.metric("c2wall_sync_signature_failures_total")
        .unwrap_or(0.0)
}

/// Waits until the agent has refused more than `n` versions.
fn wait_refused(topo: &Topo, n: f64, timeout: Duration) {
    let start = Instant::now();
    while failures(topo) <= n {
        assert!(
            start.elapsed() < timeout,
            "no refusal within {timeout:?} (failures {})",
            failures(topo)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The agent enforces `version` and nothing forged: the C&C host is
/// dropped, the host the relay tried to add is reachable.
fn still_enforcing(topo: &Topo, version: u64) {
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(
        topo.metric("c2wall_sync_applied_version"),
        Some(version as f64),
        "the forged version is not applied"
    );
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 10),
        10,
        "benign host reachable"
    );
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "still enforcing");
}

#[test]
fn forged_deltas_and_snapshots_are_refused_and_the_last_verified_list_stays() {
    if !require_root("forged_deltas_and_snapshots_are_refused_and_the_last_verified_list_stays") {
        return;
    }
    let topo = Topo::new("m");
    let (key, public) = topo.keygen("signing.key");
    let _coord = topo.coordinator_with(&["--signing-key", key.to_str().unwrap()]);
    // The relay holds a valid agent certificate: TLS does not stop it, the
    // version signature must.
    topo.sync_args("edge-relay");
    let pki = topo.pki();
    let upstream = c2wall_tls::ClientTls {
        ca: Some(pki.join("ca.crt")),
        cert: Some(pki.join("edge-relay.crt")),
        key: Some(pki.join("edge-relay.key")),
        insecure: false,
    }
    .endpoint(COORDINATOR_URL)
    .unwrap();
    // What the man in the middle wants blocked: the benign host.
    let inject = pb::Entry {
        key: Some(pb::EntryKey {
            prefix: format!("{OK4}/32"),
            ..Default::default()
        }),
        action: pb::Action::Drop as i32,
        direction: pb::Direction::Both as i32,
        source: "mitm".into(),
        ..Default::default()
    };
    let mitm = relay::start(&topo.edge, RELAY.parse().unwrap(), upstream, inject);
    let _agent = topo.agent(&[
        "--coordinator",
        &format!("http://{RELAY}"),
        "--insecure",
        "--agent-id",
        "edge-relay",
        "--trust-key",
        &public,
    ]);
    let (s, n) = (&topo.sub, &topo.net);

    // Passed through untouched, a signed version is enforced.
    let v1 = topo.publish(&[CC4]);
    topo.wait_applied(v1, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 10), 10);

    // 1. The next delta arrives with the benign host added.
    mitm.relay.set(Tamper::Deltas);
    let v2 = topo.publish(&[CC6]);
    wait_refused(&topo, 0.0, Duration::from_secs(10));
    still_enforcing(&topo, v1);

    // 2. A forged snapshot (the relay asks for one on every subscription).
    mitm.relay.set(Tamper::Snapshots);
    let before = failures(&topo);
    let snapshots = topo
        .metric("c2wall_sync_messages_total{kind=\"snapshot\"}")
        .unwrap_or(0.0);
    wait_refused(&topo, before, Duration::from_secs(40));
    assert!(
        topo.metric("c2wall_sync_messages_total{kind=\"snapshot\"}")
            .unwrap_or(0.0)
            == snapshots,
        "no forged snapshot counted as applied"
    );
    still_enforcing(&topo, v1);

    // 3. An honest relay again: the agent catches up to the real v2.
    mitm.relay.set(Tamper::Nothing);
    topo.wait_applied(v2, Duration::from_secs(60));
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 10), 10);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
}
