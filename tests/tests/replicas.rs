//! Two coordinator replicas on one real PostgreSQL, a real agent with real
//! XDP in a namespace following them: the replica it is on is killed, a
//! listed packet stays dropped throughout, and a publish made through the
//! other replica is enforced.

use std::time::{Duration, Instant};

use c2wall_e2e::pg::TempPg;
use c2wall_e2e::require_root;
use c2wall_e2e::topo::{json_u64, Topo, CC4, COORDINATOR, SUB4};

macro_rules! root {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

const SECOND: &str = "127.0.0.1:50052";
const SECOND_URL: &str = "https://127.0.0.1:50052";
const OTHER_CC: &str = "203.0.113.77";

#[test]
fn killing_the_agents_replica_keeps_enforcing_and_the_other_replica_takes_over() {
    root!("killing_the_agents_replica_keeps_enforcing_and_the_other_replica_takes_over");
    let topo = Topo::new("rp");
    let pg = TempPg::start("e2e-replicas");
    let url = pg.database("c2wall_e2e");
    let first = topo.coordinator_at(
        COORDINATOR,
        &["--store", &url, "--metrics-addr", "127.0.0.1:9481"],
    );
    let _second = topo.coordinator_at(
        SECOND,
        &["--store", &url, "--metrics-addr", "127.0.0.1:9482"],
    );
    let mut args = topo.sync_args("edge-rp");
    args.extend(["--coordinator".to_string(), SECOND_URL.to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _agent = topo.agent(&refs);
    let (s, n) = (&topo.sub, &topo.net);

    let v1 = topo.publish(&[CC4]);
    topo.wait_applied(v1, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 20), 0, "listed: dropped");
    assert_eq!(
        topo.metric("c2wall_sync_replica"),
        Some(0.0),
        "on the first replica"
    );

    // The agent's replica dies; the list stays enforced meanwhile.
    let killed = Instant::now();
    drop(first); // SIGKILL, reaped
    while topo.metric("c2wall_sync_replica") != Some(1.0) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the agent did not move within 5 s"
        );
        assert_eq!(
            topo.udp(s, SUB4, n, CC4, 9000, 2),
            0,
            "dropped after the kill"
        );
    }
    eprintln!(
        "replica killed -> agent subscribed to the other one: {:?}",
        killed.elapsed()
    );
    for _ in 0..5 {
        assert_eq!(
            topo.udp(s, SUB4, n, CC4, 9000, 10),
            0,
            "dropped after the kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Published through the other replica (the CLI skips the dead one).
    let (ok, out, err) = topo.cli(&["--coordinator", SECOND_URL, "publish", "--json", OTHER_CC]);
    assert!(ok, "{err}");
    let v2 = json_u64(&out, "version").unwrap();
    assert_eq!(v2, v1 + 1);
    topo.wait_applied(v2, Duration::from_secs(10));
    assert_eq!(
        topo.udp(s, SUB4, n, OTHER_CC, 9000, 20),
        0,
        "the new entry is enforced"
    );
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 20),
        0,
        "the old one still is"
    );
    assert_eq!(
        topo.metric("c2wall_sync_replica"),
        Some(1.0),
        "on the second replica"
    );
    assert!(topo.metric("c2wall_sync_failovers_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        topo.metric("c2wall_sync_messages_total{kind=\"snapshot\"}"),
        Some(1.0),
        "resumed by deltas, no second snapshot"
    );
    // `c2wall agents --json` names the replica the agent follows.
    let (ok, out, err) = topo.cli(&["--coordinator", SECOND_URL, "agents", "--json"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("\"replica\":\"{SECOND_URL}\"")),
        "{out}"
    );
}
