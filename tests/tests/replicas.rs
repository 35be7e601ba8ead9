//! Two coordinator replicas on one real PostgreSQL, a real agent with real
//! XDP in a namespace following them: the replica it is on is killed, a
//! listed packet stays dropped throughout, and a publish made through the
//! other replica is enforced. The same with one name for both replicas
//! (as a DNS name with several addresses): the agent moves to the address
//! still answering.

use std::time::{Duration, Instant};

use c2wall_e2e::pg::TempPg;
use c2wall_e2e::require_root;
use c2wall_e2e::topo::{json_u64, Topo, CC4, COORDINATOR, REPLICAS_NAME, SUB4};

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

/// After the failover: version `v2` (publishing OTHER_CC after `v1`) is
/// enforced with the old entry still dropped, and the agent got there by
/// deltas (one snapshot in all, the first).
fn the_new_version_is_enforced_by_deltas(topo: &Topo, v1: u64, v2: u64) {
    let (s, n) = (&topo.sub, &topo.net);
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
        topo.metric("c2wall_sync_messages_total{kind=\"snapshot\"}"),
        Some(1.0),
        "resumed by deltas, no second snapshot"
    );
}

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
    the_new_version_is_enforced_by_deltas(&topo, v1, v2);
    assert_eq!(
        topo.metric("c2wall_sync_replica"),
        Some(1.0),
        "on the second replica"
    );
    assert!(topo.metric("c2wall_sync_failovers_total").unwrap_or(0.0) >= 1.0);
    // `c2wall agents --json` names the replica the agent follows.
    let (ok, out, err) = topo.cli(&["--coordinator", SECOND_URL, "agents", "--json"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("\"replica\":\"{SECOND_URL}\"")),
        "{out}"
    );
}

#[test]
fn one_name_for_two_replicas_the_agent_moves_to_the_address_still_answering() {
    root!("one_name_for_two_replicas_the_agent_moves_to_the_address_still_answering");
    let topo = Topo::new("rn");
    let pg = TempPg::start("e2e-replica-name");
    let url = pg.database("c2wall_e2e_name");
    // Both replicas on port 50053, at 127.0.0.1 and 127.0.0.2; the agent
    // knows only the name, which resolves to both.
    let metrics = ["127.0.0.1:9483", "127.0.0.1:9484"];
    let mut replicas = [
        Some(topo.coordinator_at(
            "127.0.0.1:50053",
            &["--store", &url, "--metrics-addr", metrics[0]],
        )),
        Some(topo.coordinator_at(
            "127.0.0.2:50053",
            &["--store", &url, "--metrics-addr", metrics[1]],
        )),
    ];
    let name_url = format!("https://{REPLICAS_NAME}:50053");
    let args: Vec<String> = topo
        .sync_args("edge-rn")
        .into_iter()
        .map(|a| {
            if a.starts_with("https://") {
                name_url.clone()
            } else {
                a
            }
        })
        .collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _agent = topo.agent_with_hosts(
        &format!("127.0.0.1 {REPLICAS_NAME}\n127.0.0.2 {REPLICAS_NAME}\n"),
        &refs,
    );
    let (s, n) = (&topo.sub, &topo.net);
    let publish = |via: &str, what: &str| {
        let (ok, out, err) = topo.cli(&["--coordinator", via, "publish", "--json", what]);
        assert!(ok, "{err}");
        json_u64(&out, "version").unwrap()
    };

    let v1 = publish("https://127.0.0.1:50053", CC4);
    topo.wait_applied(v1, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 20), 0, "listed: dropped");
    // Which address the agent's stream went to.
    let on = |i: usize| topo.metric_at(metrics[i], "c2wall_connected_agents") == Some(1.0);
    let t = Instant::now();
    let first = loop {
        if let Some(i) = (0..2).find(|&i| on(i)) {
            break i;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no replica counts the agent"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let other = 1 - first;

    let killed = Instant::now();
    replicas[first] = None; // SIGKILL, reaped
    while !on(other) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the agent did not reach the other address within 5 s"
        );
        assert_eq!(
            topo.udp(s, SUB4, n, CC4, 9000, 2),
            0,
            "dropped after the kill"
        );
    }
    eprintln!(
        "replica killed -> agent on the other address: {:?}",
        killed.elapsed()
    );

    let via = ["https://127.0.0.1:50053", "https://127.0.0.2:50053"][other];
    let v2 = publish(via, OTHER_CC);
    the_new_version_is_enforced_by_deltas(&topo, v1, v2);
}
