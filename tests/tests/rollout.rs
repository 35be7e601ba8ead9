//! Staged rollout with real XDP: two edge nodes, each in namespaces of its
//! own with its own coordinator replica (one PostgreSQL behind both, so the
//! stage ceilings are shared through the database); one node is a canary.
//! A published entry is dropped at the canary first and at the other node
//! only after the canary's soak.

use std::time::{Duration, Instant};

use c2wall_e2e::pg::TempPg;
use c2wall_e2e::require_root;
use c2wall_e2e::topo::{json_u64, Topo, CC4, COORDINATOR, SUB4};

const SOAK: Duration = Duration::from_secs(4);

#[test]
fn a_published_entry_is_dropped_at_the_canary_first_and_at_the_other_node_after_the_soak() {
    if !require_root(
        "a_published_entry_is_dropped_at_the_canary_first_and_at_the_other_node_after_the_soak",
    ) {
        return;
    }
    let (canary, other) = (Topo::new("rc"), Topo::new("ro"));
    let pg = TempPg::start("e2e-rollout");
    let url = pg.database("c2wall_e2e_rollout");
    std::fs::create_dir_all(&canary.state).unwrap();
    let config = canary.state.join("rollout.toml");
    std::fs::write(
        &config,
        format!(
            "[[rollout.stage]]\nname = \"canary\"\nselector = \"role=canary\"\nsoak = \"{}s\"\n\
             [[rollout.stage]]\nname = \"all\"\nsoak = \"0s\"\n",
            SOAK.as_secs()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Each node's own replica, in its own namespaces; one database behind both.
    let _replicas: Vec<_> = [(&canary, "127.0.0.1:9491"), (&other, "127.0.0.1:9492")]
        .into_iter()
        .map(|(t, metrics)| {
            let args = [
                "--store",
                &url,
                "--config",
                config,
                "--metrics-addr",
                metrics,
            ];
            t.coordinator_at(COORDINATOR, &args)
        })
        .collect();
    let mut args = canary.sync_args("edge-canary");
    args.extend(["--label".to_string(), "role=canary".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _a = canary.agent(&refs);
    let args = other.sync_args("edge-other");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _b = other.agent(&refs);
    // The first tick stores the stages' starting ceilings.
    std::thread::sleep(Duration::from_secs(2));
    let (ok, out, err) = canary.cli(&["rollout", "status", "--json"]);
    assert!(ok && out.contains("\"canary\""), "{out}{err}");

    let delivered = |t: &Topo| t.udp(&t.sub, SUB4, &t.net, CC4, 9000, 10);
    assert_eq!(delivered(&canary), 10, "not listed yet");
    let t = Instant::now();
    let v = canary.publish(&[CC4]);
    canary.wait_applied(v, Duration::from_secs(5));
    assert_eq!(delivered(&canary), 0, "dropped at the canary");
    let at_canary = t.elapsed();
    assert_eq!(delivered(&other), 10, "not yet at the other node");
    let (ok, out, _) = other.cli(&["rollout", "status", "--json"]);
    assert!(ok);
    assert_eq!(json_u64(&out, "latest_version"), Some(v), "{out}");

    while delivered(&other) != 0 {
        assert!(
            t.elapsed() < SOAK + Duration::from_secs(6),
            "the other node did not drop within the soak and 6 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let at_other = t.elapsed();
    eprintln!("published -> dropped at the canary {at_canary:?}, at the other node {at_other:?}");
    assert!(
        at_other >= SOAK,
        "the other node dropped after {at_other:?}, before the soak"
    );
    assert_eq!(delivered(&canary), 0, "still dropped at the canary");
}
