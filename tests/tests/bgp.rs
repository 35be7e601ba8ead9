//! The BGP exporter with a real peer: the coordinator and `c2wall-bgp`
//! (driving its own BIRD) in one namespace, the peer in another (BIRD 2 in
//! one test, GoBGP in the other), joined by a veth pair. A published drop entry appears in the
//! peer's table as an RTBH route (BLACKHOLE, NO_EXPORT, discard next hop)
//! within 2 s and goes within 2 s of its withdrawal; a port-scoped entry is
//! a Flowspec rule in the peer's flow table; a monitor entry never appears;
//! the route ceiling holds; the kill switch withdraws everything and `clear`
//! restores it; the exporter killed and started again within its grace:
//! it adopts the running BIRD and the peer withdraws nothing; killed for
//! good: BIRD goes after the grace without a Cease and the peer withdraws
//! after its graceful-restart timer.

use std::time::{Duration, Instant};

use c2wall_e2e::require_root;

use c2wall_e2e::bgp::{PeerKind, Rig, GR_SECONDS, PEER_METRICS};

#[test]
fn the_list_reaches_a_bird_peer_as_rtbh_and_flowspec_and_survives_a_restart() {
    if require_root("the_list_reaches_a_bird_peer_as_rtbh_and_flowspec_and_survives_a_restart")
        && peer_installed("/usr/sbin/bird")
    {
        scenario(PeerKind::Bird);
    }
}

#[test]
fn the_list_reaches_a_gobgp_peer_as_rtbh_and_flowspec_and_survives_a_restart() {
    if require_root("the_list_reaches_a_gobgp_peer_as_rtbh_and_flowspec_and_survives_a_restart")
        && peer_installed("/usr/bin/gobgpd")
    {
        scenario(PeerKind::Gobgp);
    }
}

/// The peer's daemon is installed; in CI its absence fails the test.
fn peer_installed(bin: &str) -> bool {
    if std::path::Path::new(bin).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{bin} missing (scripts/setup.sh installs bird2 and gobgpd)"
    );
    eprintln!("SKIP: {bin} is not installed");
    false
}

fn scenario(kind: PeerKind) {
    let r = Rig::new(kind, 4);
    let coord = r.topo.coordinator_with(&[
        "--signing-key",
        r.topo.state.join("signing.key").to_str().unwrap(),
    ]);
    let mut exporter = r.exporter();
    r.until("the session comes up", Duration::from_secs(20), || {
        r.established()
    });

    // A drop entry: an RTBH route with the communities, within 2 s.
    let took = {
        let t = Instant::now();
        r.topo.publish(&["203.0.113.66", "--reason", "C&C"]);
        r.until("the RTBH route", Duration::from_secs(2), || {
            r.has("203.0.113.66/32")
        });
        t.elapsed()
    };
    eprintln!("publish -> route at the peer: {took:?}");
    let all = r.route("203.0.113.66/32");
    let needles: &[&str] = match kind {
        PeerKind::Bird => &["(65535,666)", "(65535,65281)", "(64512,666)", "192.0.2.1"],
        PeerKind::Gobgp => &["blackhole", "no-export", "64512:666", "192.0.2.1"],
    };
    for needle in needles {
        assert!(all.contains(needle), "{needle} in {all}");
    }
    // A port-scoped entry: a Flowspec rule; a monitor entry: nothing.
    r.topo.publish(&[
        "198.51.100.7",
        "--protocol",
        "tcp",
        "--port",
        "443",
        "--direction",
        "to",
    ]);
    r.topo.publish(&["203.0.113.88", "--action", "monitor"]);
    let rule = match kind {
        PeerKind::Bird => "dst 198.51.100.7/32; proto 6; dport 443",
        PeerKind::Gobgp => {
            "[destination: 198.51.100.7/32][protocol: ==tcp][destination-port: ==443]"
        }
    };
    r.until("the flow rule", Duration::from_secs(2), || {
        r.flows().contains(rule)
    });
    if kind == PeerKind::Gobgp {
        assert!(r.flows().contains("discard"), "{}", r.flows());
    }
    assert!(
        !r.has("203.0.113.88/32"),
        "a monitor entry is never announced"
    );
    // The centre sees the exporter and its session.
    let (_, agents, _) = r.topo.cli(&["agents", "--json"]);
    assert!(agents.contains("\"kind\":\"bgp\""), "{agents}");

    // A withdrawal goes within 2 s.
    let (ok, _, err) = r.topo.cli(&["withdraw", "203.0.113.66"]);
    assert!(ok, "{err}");
    r.until("the withdrawal", Duration::from_secs(2), || {
        !r.has("203.0.113.66/32")
    });

    // The ceiling (max_routes = 4): five entries, the four most specific go.
    r.topo
        .publish(&["203.0.113.1", "203.0.113.2", "203.0.113.3", "198.18.0.0/24"]);
    r.until("the ceiling", Duration::from_secs(3), || {
        r.peer_routes() == 4
    });
    assert!(!r.has("198.18.0.0/24"), "the shortest prefix is left out");
    let metrics = r.topo.http_get_at(PEER_METRICS, "/metrics").unwrap();
    assert!(
        metrics.contains("c2wall_bgp_refused_entries{peer=\"rr1\",reason=\"ceiling\"} 1"),
        "{metrics}"
    );

    bgp_rules_hold(&metrics);

    // The kill switch withdraws everything; clear announces again.
    let (ok, _, err) = r.topo.cli(&["mode", "off", "--reason", "drill"]);
    assert!(ok, "{err}");
    r.until("off withdraws", Duration::from_secs(3), || {
        r.peer_routes() == 0
    });
    let (ok, _, err) = r.topo.cli(&["mode", "clear", "--reason", "drill over"]);
    assert!(ok, "{err}");
    r.until("clear restores", Duration::from_secs(3), || {
        r.peer_routes() == 4
    });

    // Killed and started again within the grace: BIRD is adopted, nothing goes.
    drop(exporter);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            r.peer_routes(),
            4,
            "the peer keeps the routes (graceful restart)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    exporter = r.exporter();
    // The session never drops: the peer holds all the routes throughout.
    let t = Instant::now();
    let mut seen = Vec::new();
    loop {
        let n = r.peer_routes();
        seen.push(n);
        let up = r.established();
        if up && t.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the session did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.iter().all(|n| *n == 4),
        "withdrawn across the restart: {seen:?}"
    );
    // The adopted BIRD takes the restarted exporter's list.
    r.topo.publish(&["203.0.113.4"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(r.peer_routes(), 4, "still at the ceiling after the restart");
    // An impostor on the coordinator's address, signing with a key the
    // exporter does not trust: refused, the routers keep the verified list.
    drop(coord);
    let (other, _) = r.topo.keygen("impostor.key");
    let impostor_db = r.topo.state.join("impostor.db");
    let _impostor = r.topo.coordinator_with(&[
        "--store",
        impostor_db.to_str().unwrap(),
        "--signing-key",
        other.to_str().unwrap(),
    ]);
    r.topo.publish(&["203.0.113.200"]);
    r.until(
        "the impostor's version is refused",
        Duration::from_secs(15),
        || {
            r.exporter_metric("c2wall_bgp_refused_versions_total{reason=\"signature\"}")
                .is_some_and(|n| n > 0.0)
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(!r.has("203.0.113.200/32"), "nothing of the impostor's list");
    assert_eq!(r.peer_routes(), 4, "the last verified list stays");

    // Killed for good: BIRD goes after the grace, the peer withdraws after
    // its graceful-restart timer.
    drop(exporter);
    let gone = r.until(
        "withdrawn after the graceful-restart time",
        Duration::from_secs(c2wall_bgp::watchdog::GRACE_SECONDS + GR_SECONDS + 10),
        || r.peer_routes() == 0,
    );
    eprintln!("exporter gone -> peer withdrew after {gone:?}");
    let floor = c2wall_bgp::watchdog::GRACE_SECONDS + GR_SECONDS - 1;
    assert!(gone >= Duration::from_secs(floor), "{gone:?}");
}

/// `deploy/alerts-bgp.yml`: promtool accepts it (when installed) and every
/// `c2wall_bgp_*` metric its expressions (and the exporter dashboard's,
/// `deploy/grafana-bgp.json`) read is on the exporter's /metrics.
fn bgp_rules_hold(metrics: &str) {
    use c2wall_e2e::rules::{deploy, promtool_accepts, rule_exprs, served};
    let rules = deploy("alerts-bgp.yml");
    promtool_accepts(&rules);
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana-bgp.json")).unwrap())
            .unwrap();
    let mut exprs = rule_exprs(&rules);
    exprs.extend(
        dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["targets"][0]["expr"].as_str().unwrap().to_string()),
    );
    let names = served(&exprs, "c2wall_bgp_", metrics, "");
    assert!(names >= 9, "{names}");
}
