//! Observability end to end: a real Prometheus scrapes an agent and a
//! coordinator that carry real traffic in namespaces; every metric the issue
//! names is there with a sane value, `promtool` accepts the rules and both
//! /metrics outputs, and every dashboard and alert expression evaluates with
//! data. Also: sightings of two subscribers reach the coordinator
//! pseudonymised with the right counts.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use c2wall_e2e::{process::Guarded, require_root, topo::*};
use serde_json::Value;

const COORD_METRICS: &str = "127.0.0.1:9465";
const PROM: &str = "127.0.0.1:9090";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PromQL query against the test's Prometheus: the result vector.
fn query(topo: &Topo, q: &str) -> Result<Vec<Value>, String> {
    let body = topo
        .get_body(PROM, &format!("/api/v1/query?query={}", encode(q)))
        .ok_or_else(|| format!("no answer for `{q}`"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("`{q}`: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("`{q}`: {body}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn value(v: &Value) -> f64 {
    v["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The left side of an alert expression (its last top-level comparison
/// removed): the part that must return data.
fn probe(expr: &str) -> String {
    let first = expr.split(" or ").next().unwrap_or(expr);
    for op in [" > ", " < ", " >= ", " <= ", " == "] {
        if let Some((lhs, _)) = first.rsplit_once(op) {
            return lhs.trim().to_string();
        }
    }
    first.to_string()
}

fn setup(tag: &str) -> (Topo, Guarded, Guarded) {
    let topo = Topo::new(tag);
    std::fs::create_dir_all(&topo.state).unwrap();
    let feed = topo.state.join("list.txt");
    std::fs::write(&feed, "192.0.2.0/24\n").unwrap();
    let config = topo.state.join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "[[feed]]\nname = \"local\"\npath = \"{}\"\nformat = \"plain\"\ninterval = 60\ncategory = \"botnet-cc\"\n",
            feed.display()
        ),
    )
    .unwrap();
    let coord = topo.coordinator_with(&["--config", config.to_str().unwrap()]);
    let mut args = topo.sync_args("edge-obs");
    args.extend(["--report-interval".into(), "1".into()]);
    let agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (topo, coord, agent)
}

#[test]
fn prometheus_scrapes_every_metric_and_every_dashboard_and_alert_expression_has_data() {
    if !require_root(
        "prometheus_scrapes_every_metric_and_every_dashboard_and_alert_expression_has_data",
    ) {
        return;
    }
    if !(have("prometheus") && have("promtool")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus/promtool missing (scripts/setup.sh installs them)"
        );
        eprintln!("SKIP: prometheus and promtool are not installed");
        return;
    }
    let (topo, _coord, _agent) = setup("o");
    let v = topo.publish(&[CC4, "--category", "mirai"]);
    let v = topo.publish(&[OK6, "--action", "monitor"]).max(v);
    topo.wait_applied(v, Duration::from_secs(5));
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 20), 0);
    assert_eq!(
        topo.udp(s, SUB6, n, OK6, 9000, 5),
        5,
        "monitor entry passes"
    );

    // promtool on the rules and on both expositions.
    let rules = repo().join("deploy/alerts.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for addr in [METRICS, COORD_METRICS] {
        let text = topo.get_body(addr, "/metrics").expect("metrics");
        let mut p = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = p.wait_with_output().unwrap();
        let complaints = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && complaints.trim().is_empty(),
            "promtool check metrics ({addr}): {complaints}"
        );
    }
    assert_eq!(
        topo.get_body(COORD_METRICS, "/readyz").as_deref(),
        Some("ready\n")
    );
    assert_eq!(
        topo.get_body(METRICS, "/readyz").as_deref(),
        Some("ready\n")
    );

    // A real Prometheus in the edge namespace, scraping both every second.
    let dir = topo.state.join("prom");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&rules, dir.join("alerts.yml")).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [alerts.yml]\n\
             scrape_configs:\n  - job_name: c2wall-agent\n    static_configs: [{{targets: ['{METRICS}']}}]\n\
             \x20 - job_name: c2wall-coordinator\n    static_configs: [{{targets: ['{COORD_METRICS}']}}]\n"
        ),
    )
    .unwrap();
    let mut cmd = topo.edge.command("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.join("data").display()
    ))
    .arg(format!("--web.listen-address={PROM}"))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _prom = Guarded::spawn(cmd);
    wait("both targets up", Duration::from_secs(30), || {
        query(&topo, "up == 1").is_ok_and(|r| r.len() == 2)
    });
    // Traffic while Prometheus watches, so rates have two samples.
    for _ in 0..3 {
        topo.udp(s, SUB4, n, CC4, 9000, 5);
        std::thread::sleep(Duration::from_millis(1200));
    }

    // Every metric the issue names, with a sane value.
    let present = |name: &str| -> Vec<Value> {
        query(&topo, &format!("{{__name__=\"{name}\"}}")).unwrap_or_default()
    };
    for name in [
        "c2wall_packets_total",
        "c2wall_bytes_total",
        "c2wall_unmatched_packets_total",
        "c2wall_entries",
        "c2wall_sync_applied_version",
        "c2wall_sync_coordinator_version",
        "c2wall_sync_seconds_since_contact",
        "c2wall_sync_errors_total",
        "c2wall_sync_reconnects_total",
        "c2wall_apply_duration_seconds_bucket",
        "c2wall_map_slots",
        "c2wall_map_slot_capacity",
        "c2wall_xdp_attached",
        "c2wall_build_info",
        "c2wall_sampled_events_total",
        "c2wall_sightings",
        "c2wall_coordinator_version",
        "c2wall_coordinator_entries",
        "c2wall_publishes_total",
        "c2wall_connected_agents",
        "c2wall_agent_lag_versions_bucket",
        "c2wall_agent_lag_seconds_bucket",
        "c2wall_feed_last_success_timestamp_seconds",
        "c2wall_feed_entries",
        "c2wall_feed_rejected_lines",
        "c2wall_feed_pull_failures_total",
        "c2wall_rpc_duration_seconds_bucket",
    ] {
        assert!(!present(name).is_empty(), "{name} is not in Prometheus");
    }
    let one = |q: &str| -> f64 {
        let r = query(&topo, q).unwrap();
        assert_eq!(r.len(), 1, "`{q}`: {r:?}");
        value(&r[0])
    };
    assert!(
        one("sum(c2wall_packets_total{verdict=\"drop\",direction=\"to_cc\",interface=\"e0\"})")
            >= 35.0
    );
    assert!(one("sum(c2wall_packets_total{verdict=\"would_drop\"})") >= 5.0);
    assert_eq!(
        one("c2wall_sync_applied_version"),
        one("c2wall_coordinator_version")
    );
    assert!(one("c2wall_sync_seconds_since_contact") <= 5.0);
    assert_eq!(one("c2wall_connected_agents"), 1.0);
    assert_eq!(
        one("sum(c2wall_entries)"),
        3.0,
        "two published + one feed entry"
    );
    assert_eq!(one("c2wall_feed_entries{feed=\"local\"}"), 1.0);
    assert_eq!(one("sum(c2wall_xdp_attached)"), 2.0);
    assert!(one("sum(c2wall_sampled_events_total{result=\"written\"})") > 0.0);
    assert_eq!(one("c2wall_agent_lag_versions_count"), 1.0);

    // Every dashboard expression returns data.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            let r = query(&topo, e).unwrap_or_else(|err| panic!("{}: {err}", panel["title"]));
            assert!(
                !r.is_empty(),
                "dashboard panel {}: `{e}` has no data",
                panel["title"]
            );
            exprs += 1;
        }
    }
    assert!(exprs >= 19);
    // Every alert expression evaluates, and the quantity it compares has data.
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let mut alerts = 0;
    for line in rules_text.lines() {
        let Some(expr) = line.trim().strip_prefix("expr: ") else {
            continue;
        };
        query(&topo, expr).unwrap_or_else(|e| panic!("alert `{expr}`: {e}"));
        let lhs = probe(expr);
        assert!(
            !query(&topo, &lhs).unwrap().is_empty(),
            "alert `{expr}`: `{lhs}` has no data"
        );
        alerts += 1;
    }
    assert_eq!(alerts, 14);
    // Nothing is wrong, so nothing fires... except after detaching.
    assert!(query(&topo, "ALERTS{alertname=\"C2wallXdpDetached\"}")
        .unwrap()
        .is_empty());
    topo.detach();
    wait("the detach to show", Duration::from_secs(10), || {
        query(&topo, "sum(c2wall_xdp_attached)").is_ok_and(|r| r.len() == 1 && value(&r[0]) == 0.0)
    });
}

#[test]
fn two_subscribers_become_two_pseudonymised_sightings_with_their_counts() {
    if !require_root("two_subscribers_become_two_pseudonymised_sightings_with_their_counts") {
        return;
    }
    let (topo, _coord, _agent) = setup("g");
    topo.sub
        .ip(&["addr", "add", "198.51.100.11/24", "dev", "s0"]);
    let v = topo.publish(&[CC4]);
    topo.wait_applied(v, Duration::from_secs(5));
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 7), 0);
    assert_eq!(topo.udp(s, "198.51.100.11", n, CC4, 9000, 3), 0);
    let mut rows = Vec::new();
    wait(
        "two sightings at the coordinator",
        Duration::from_secs(15),
        || {
            let (ok, out, _) = topo.cli(&["sightings", "--json"]);
            if !ok {
                return false;
            }
            let v: Value = serde_json::from_str(&out).unwrap();
            rows = v["sightings"].as_array().cloned().unwrap_or_default();
            let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
            rows.len() == 2 && total == 10
        },
    );
    let mut counts: Vec<u64> = rows.iter().map(|r| r["count"].as_u64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, [3, 7]);
    for r in &rows {
        let sub = r["subscriber"].as_str().unwrap();
        assert!(
            sub.starts_with("p-") && !sub.contains("198.51.100"),
            "{sub}"
        );
        assert_eq!(r["entry"], format!("{CC4}/32"));
        assert_eq!(
            (r["agent_id"].as_str(), r["dropped"].as_bool()),
            (Some("edge-obs"), Some(true))
        );
        assert_eq!(
            (r["ip_protocol"].as_u64(), r["cc_port"].as_u64()),
            (Some(17), Some(9000))
        );
    }
    assert_ne!(rows[0]["subscriber"], rows[1]["subscriber"]);
    // Locally: `c2wall-agent top` shows the entry and the latest drops.
    let top = topo.get_body(METRICS, "/top").expect("/top");
    let v: Value = serde_json::from_str(&top).unwrap();
    assert_eq!(v["top"][0]["entry"], format!("{CC4}/32"));
    assert_eq!(v["top"][0]["hits"], 10);
    assert!(v["recent"].as_array().unwrap().len() >= 10);
}
