//! Three tiers with real processes and real XDP: a centre coordinator, an
//! ISP coordinator following it (`[[upstream]]`, its own signing key, a
//! `downstream` certificate), and an edge agent on a veth pair that trusts
//! only the ISP's key. A centre publish is dropped at the ISP's edge within
//! a second; a centre withdrawal is delivered again; an ISP-protected
//! address is not dropped although the centre lists it; with the centre
//! killed the edge keeps dropping and a local ISP entry is enforced; the
//! centre back, the ISP catches up; the ISP restarted while the centre is
//! away still enforces the upstream entries.

use std::time::{Duration, Instant};

use c2wall_e2e::require_root;
use c2wall_e2e::topo::{json_u64, Topo, CC4, CC6, COORDINATOR, OK4, SUB4, SUB6};

const CENTRE: &str = "127.0.0.1:50061";
const CENTRE_URL: &str = "https://127.0.0.1:50061";
const CENTRE_METRICS: &str = "127.0.0.1:9483";
const ISP_METRICS: &str = "127.0.0.1:9484";

struct Tiers {
    topo: Topo,
    centre_args: Vec<String>,
    isp_args: Vec<String>,
}

impl Tiers {
    fn new() -> Tiers {
        let topo = Topo::new("tr");
        let pki = topo.pki();
        topo.issue("downstream", "isp-a");
        let (centre_key, centre_pub) = topo.keygen("centre.key");
        let (isp_key, isp_pub) = topo.keygen("isp.key");
        let f = |n: &str| pki.join(n).to_str().unwrap().to_string();
        let config = topo.state.join("isp.toml");
        std::fs::write(
            &config,
            format!(
                "[[upstream]]\nname = \"jp-centre\"\nurl = [\"{CENTRE_URL}\"]\n\
                 tls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
                 trust_keys = [\"{centre_pub}\"]\naction = \"drop\"\n",
                f("ca.crt"),
                f("isp-a.crt"),
                f("isp-a.key")
            ),
        )
        .unwrap();
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let centre_args = vec![
            "--store".into(),
            s(&topo.state.join("centre.db")),
            "--signing-key".into(),
            s(&centre_key),
            "--metrics-addr".into(),
            CENTRE_METRICS.into(),
        ];
        let isp_args = vec![
            "--store".into(),
            s(&topo.state.join("isp.db")),
            "--signing-key".into(),
            s(&isp_key),
            "--config".into(),
            s(&config),
            "--metrics-addr".into(),
            ISP_METRICS.into(),
        ];
        std::fs::write(topo.state.join("isp.pub"), isp_pub).unwrap();
        Tiers {
            topo,
            centre_args,
            isp_args,
        }
    }

    fn centre(&self) -> c2wall_e2e::process::Guarded {
        let a: Vec<&str> = self.centre_args.iter().map(String::as_str).collect();
        self.topo.coordinator_at(CENTRE, &a)
    }

    fn isp(&self) -> c2wall_e2e::process::Guarded {
        let a: Vec<&str> = self.isp_args.iter().map(String::as_str).collect();
        self.topo.coordinator_at(COORDINATOR, &a)
    }

    fn agent(&self) -> c2wall_e2e::process::Guarded {
        let isp_pub = std::fs::read_to_string(self.topo.state.join("isp.pub")).unwrap();
        let mut args = self.topo.sync_args("edge-1");
        args.extend(["--trust-key".into(), isp_pub]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.topo.agent(&refs)
    }

    /// `c2wall ARGS` at the centre, as its admin.
    fn at_centre(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.topo.cli_to(CENTRE_URL, Some("test"), args);
        assert!(ok, "c2wall {args:?} at the centre: {err}");
        out
    }

    /// Packets of 5 from the subscriber to `dst` that get through.
    fn delivered(&self, dst: &str) -> usize {
        let src = if dst.contains(':') { SUB6 } else { SUB4 };
        self.topo
            .udp(&self.topo.sub, src, &self.topo.net, dst, 9000, 5)
    }

    /// Waits until `dst` is dropped (`true`) or delivered; returns how long.
    fn until(&self, dst: &str, dropped: bool, within: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let n = self.delivered(dst);
            if (n == 0) == dropped {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < within,
                "{dst} not {} within {within:?} ({n} of 5 delivered)",
                if dropped { "dropped" } else { "delivered" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_centre_publish_reaches_the_isps_edge_and_the_isp_keeps_its_own_say() {
    if !require_root("a_centre_publish_reaches_the_isps_edge_and_the_isp_keeps_its_own_say") {
        return;
    }
    let t = Tiers::new();
    let mut centre = t.centre();
    let mut isp = t.isp();
    let _agent = t.agent();
    assert_eq!(t.delivered(CC4), 5, "nothing listed yet");

    // A centre publish, enforced at the ISP's edge within a second (the
    // agent's applied version moves; a probe then sees the drop).
    let applied = || t.topo.metric("c2wall_sync_applied_version").unwrap_or(0.0);
    let before = applied();
    let start = Instant::now();
    t.at_centre(&[
        "publish",
        CC4,
        "--category",
        "mirai",
        "--reference",
        "case-1",
    ]);
    while applied() <= before {
        assert!(start.elapsed() < Duration::from_secs(5), "not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    eprintln!("centre publish -> enforced at the ISP's edge: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(t.delivered(CC4), 0, "dropped at the ISP's edge");
    // The ISP explains where it came from.
    let (ok, out, err) = t.topo.cli(&["explain", CC4]);
    assert!(ok, "{err}");
    assert!(
        out.contains("upstream:jp-centre") && out.contains("via upstream jp-centre"),
        "{out}"
    );
    // Every metric the upstream alert rules read is served, and promtool
    // accepts the rules.
    upstream_rules_hold(&t);
    // The centre sees the ISP as a downstream coordinator.
    let agents = t.at_centre(&["agents", "--json"]);
    assert!(
        agents.contains("\"agent_id\":\"isp-a\"") && agents.contains("\"kind\":\"downstream\""),
        "{agents}"
    );

    // A centre withdrawal is delivered again.
    t.at_centre(&["withdraw", CC4, "--reason", "false positive"]);
    t.until(CC4, false, Duration::from_secs(2));

    // An ISP-protected address is not dropped although the centre lists it.
    t.at_centre(&["publish", OK4]);
    t.until(OK4, true, Duration::from_secs(2));
    let (ok, _, err) = t.topo.cli(&[
        "protect",
        "add",
        &format!("{OK4}/32"),
        "--why",
        "our portal",
    ]);
    assert!(ok, "{err}");
    t.until(OK4, false, Duration::from_secs(3));
    let (_, out, _) = t.topo.cli(&["explain", OK4]);
    assert!(out.contains("not enforced here"), "{out}");

    // The centre killed: the edge keeps dropping, a local entry is enforced.
    t.at_centre(&["publish", CC4]);
    t.until(CC4, true, Duration::from_secs(2));
    drop(centre);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(t.delivered(CC4), 0, "fail-static at the ISP");
    let v = t.topo.publish(&[CC6]);
    assert!(v > 0);
    t.until(CC6, true, Duration::from_secs(2));
    let (_, list, _) = t.topo.cli(&["feed", "list", "--json"]);
    assert!(list.contains("upstream:jp-centre"), "{list}");

    // The centre back: the ISP catches up (a new centre entry arrives).
    centre = t.centre();
    t.at_centre(&["publish", "203.0.113.99"]);
    let upstream_version = json_u64(&t.at_centre(&["history", "--json"]), "version").unwrap();
    let start = Instant::now();
    while t.topo.metric_at(
        ISP_METRICS,
        "c2wall_upstream_version{upstream=\"jp-centre\"}",
    ) != Some(upstream_version as f64)
    {
        assert!(start.elapsed() < Duration::from_secs(15), "no catch-up");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The ISP restarted while the centre is away: still enforcing.
    drop(centre);
    drop(isp);
    isp = t.isp();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        t.delivered(CC4),
        0,
        "upstream entry kept across the restart"
    );
    assert_eq!(t.delivered(CC6), 0, "local entry kept");
    assert_eq!(t.delivered(OK4), 5, "still vetoed");
    drop(isp);
}

/// `deploy/alerts-upstream.yml`: promtool accepts it (when installed) and
/// every `c2wall_upstream_*` metric its expressions read is on the ISP
/// coordinator's /metrics, labelled with the upstream's name.
fn upstream_rules_hold(t: &Tiers) {
    use c2wall_e2e::rules::{deploy, promtool_accepts, rule_exprs, served};
    let rules = deploy("alerts-upstream.yml");
    promtool_accepts(&rules);
    let body = t.topo.http_get_at(ISP_METRICS, "/metrics").unwrap();
    let names = served(
        &rule_exprs(&rules),
        "c2wall_upstream_",
        &body,
        "upstream=\"jp-centre\"",
    );
    assert!(names >= 5, "{names}");
}
