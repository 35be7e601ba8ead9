//! Certificate identities end to end: a revoked edge node is refused by the
//! coordinator after a SIGHUP reload and keeps enforcing its last list
//! (fail-static); the other nodes are unaffected.

use std::time::{Duration, Instant};

use c2wall_e2e::{require_root, topo::*};

#[test]
fn a_revoked_agent_is_refused_after_a_reload_and_keeps_enforcing_its_last_list() {
    if !require_root("a_revoked_agent_is_refused_after_a_reload_and_keeps_enforcing_its_last_list")
    {
        return;
    }
    let topo = Topo::new("k");
    let pki = topo.pki();
    // A CRL exists from the start (one unrelated certificate revoked).
    topo.issue("agent", "retired");
    let crl = c2wall_tls::ca::revoke(&pki, "retired").unwrap();
    let coord = topo.coordinator_with(&["--tls-crl", crl.to_str().unwrap()]);
    let args = topo.sync_args("edge-test");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = topo.agent(&args);
    let v1 = topo.publish(&[CC4]);
    topo.wait_applied(v1, Duration::from_secs(5));

    // The node is reported stolen: revoke, reload, and the node reconnects.
    c2wall_tls::ca::revoke(&pki, "edge-test").unwrap();
    coord.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    agent.signal(libc::SIGKILL);
    drop(agent);
    let _agent = topo.agent(&args);
    let v2 = topo.publish(&[OK4]);
    let start = Instant::now();
    while topo.metric("c2wall_sync_errors_total").unwrap_or(0.0) < 2.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the agent kept connecting"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        topo.metric("c2wall_sync_applied_version"),
        Some(v1 as f64),
        "nothing after the revocation reaches it"
    );
    assert!(v2 > v1);
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "still enforcing v1");
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 10), 10);
    // The coordinator counted the refusals; operators still work.
    let metrics = topo.get_body("127.0.0.1:9465", "/metrics").unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("c2wall_rpc_refused_total{reason=\"tls_handshake\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 2.0, "refused handshakes counted: {refused}");
    let (ok, agents, err) = topo.cli(&["agents", "--json"]);
    assert!(ok, "{err}");
    assert!(agents.contains("edge-test"), "{agents}");
}
