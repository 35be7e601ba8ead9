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

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use c2wall_e2e::netns::{veth, Netns};
use c2wall_e2e::process::{workspace_bin, Guarded};
use c2wall_e2e::topo::{Topo, COORDINATOR_URL};
use c2wall_e2e::{require_root, unique};

const PEER_METRICS: &str = "127.0.0.1:9478";
const GR_SECONDS: u64 = 6;

#[derive(Clone, Copy, PartialEq)]
enum PeerKind {
    Bird,
    Gobgp,
}

struct Rig {
    kind: PeerKind,
    topo: Topo,
    _peer_ns: Netns,
    peer_sock: String,
    _peer: Guarded,
    config: std::path::PathBuf,
}

fn have(bin: &str) -> bool {
    std::path::Path::new(bin).exists()
}

const GOBGP_API: &str = "127.0.0.1:50052";

impl Rig {
    fn new(kind: PeerKind) -> Rig {
        let topo = Topo::new("bg");
        let peer_ns = Netns::new(unique("bgpp"));
        veth(&topo.edge, "g0", &peer_ns, "g1");
        topo.edge.ip(&["addr", "add", "10.77.0.1/24", "dev", "g0"]);
        peer_ns.ip(&["addr", "add", "10.77.0.2/24", "dev", "g1"]);
        peer_ns.ip(&["link", "set", "lo", "up"]);
        let pki = topo.pki();
        topo.issue("agent", "bgp-1");
        std::fs::create_dir_all(&topo.state).unwrap();
        let peer_sock = topo.state.join("peer.ctl").display().to_string();
        let peer = match kind {
            PeerKind::Bird => {
                let conf = topo.state.join("peer.conf");
                std::fs::write(
                    &conf,
                    "router id 10.77.0.2;\nprotocol device {}\nflow4 table flowtab4;\nflow6 table flowtab6;\n\
                     protocol bgp exporter {\n  local 10.77.0.2 as 64512;\n  neighbor 10.77.0.1 as 64512;\n\
                     \x20 graceful restart aware;\n  ipv4 { import all; export none; };\n\
                     \x20 ipv6 { import all; export none; };\n\
                     \x20 flow4 { table flowtab4; import all; export none; };\n\
                     \x20 flow6 { table flowtab6; import all; export none; };\n}\n",
                )
                .unwrap();
                let mut c = peer_ns.command("/usr/sbin/bird");
                c.arg("-f").arg("-c").arg(&conf).args(["-s", &peer_sock]);
                c
            }
            PeerKind::Gobgp => {
                let conf = topo.state.join("gobgpd.toml");
                let afi = |name: &str| {
                    format!(
                        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
                         afi-safi-name = \"{name}\"\n    \
                         [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
                    )
                };
                std::fs::write(
                    &conf,
                    format!(
                        "[global.config]\n  as = 64512\n  router-id = \"10.77.0.2\"\n  \
                         local-address-list = [\"10.77.0.2\"]\n[[neighbors]]\n  \
                         [neighbors.config]\n    neighbor-address = \"10.77.0.1\"\n    \
                         peer-as = 64512\n  [neighbors.graceful-restart.config]\n    \
                         enabled = true\n{}{}",
                        afi("ipv4-unicast"),
                        afi("ipv4-flowspec")
                    ),
                )
                .unwrap();
                let mut c = peer_ns.command("/usr/bin/gobgpd");
                c.arg("-f").arg(&conf).args(["--api-hosts", GOBGP_API]);
                c
            }
        };
        let mut peer = peer;
        peer.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let peer = Guarded::spawn(peer);
        let (_, public) = topo.keygen("signing.key");
        let f = |n: &str| pki.join(n).display().to_string();
        let config = topo.state.join("bgp.toml");
        std::fs::write(
            &config,
            format!(
                "coordinator = [\"{COORDINATOR_URL}\"]\ntls_ca = \"{}\"\ntls_cert = \"{}\"\n\
                 tls_key = \"{}\"\ntrust_keys = [\"{public}\"]\nlocal_asn = 64512\n\
                 router_id = \"10.77.0.1\"\nstate_dir = \"{}\"\nmetrics_addr = \"{PEER_METRICS}\"\n\
                 graceful_restart_time = {GR_SECONDS}\n\
                 [[peer]]\nname = \"rr1\"\naddress = \"10.77.0.2\"\nasn = 64512\nrtbh = true\n\
                 flowspec = true\nmax_routes = 4\ncommunity = \"64512:666\"\n",
                f("ca.crt"),
                f("bgp-1.crt"),
                f("bgp-1.key"),
                topo.state.join("bgp").display()
            ),
        )
        .unwrap();
        Rig {
            kind,
            topo,
            _peer_ns: peer_ns,
            peer_sock,
            _peer: peer,
            config,
        }
    }

    fn exporter(&self) -> Guarded {
        let mut c = self
            .topo
            .edge
            .command(workspace_bin("c2wall-bgp").to_str().unwrap());
        c.arg("--config").arg(&self.config).stdin(Stdio::null());
        if std::env::var_os("C2WALL_TEST_VERBOSE").is_none() {
            c.stderr(Stdio::null());
        }
        Guarded::spawn(c)
    }

    /// `birdc` at the peer.
    fn peer(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/sbin/birdc")
            .args(["-s", &self.peer_sock])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gobgp` at the peer (in its namespace, on its API port).
    fn gobgp(&self, args: &[&str]) -> String {
        let (host, port) = GOBGP_API.split_once(':').unwrap();
        let out = self
            ._peer_ns
            .command("/usr/bin/gobgp")
            .args(["-u", host, "-p", port])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn established(&self) -> bool {
        match self.kind {
            PeerKind::Bird => self.peer(&["show", "protocols"]).contains("Established"),
            PeerKind::Gobgp => self.gobgp(&["neighbor"]).contains("Establ"),
        }
    }

    /// IPv4 routes and flow rules the peer holds from the exporter.
    fn peer_routes(&self) -> usize {
        match self.kind {
            PeerKind::Bird => self
                .peer(&["show", "route", "count"])
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(3) == Some(&"routes") && f.get(1) == Some(&"of"))
                        .then(|| f[0].parse::<usize>().ok())
                        .flatten()
                })
                .sum(),
            PeerKind::Gobgp => ["ipv4", "ipv4-flowspec"]
                .iter()
                .map(|a| {
                    self.gobgp(&["global", "rib", "-a", a])
                        .lines()
                        // `S*>`: a stale route kept for a restarting peer.
                        .filter(|l| l.trim_start_matches('S').starts_with('*'))
                        .count()
                })
                .sum(),
        }
    }

    /// The peer's view of one route (its attributes).
    fn route(&self, prefix: &str) -> String {
        match self.kind {
            PeerKind::Bird => self.peer(&["show", "route", prefix, "all"]),
            PeerKind::Gobgp => self
                .gobgp(&["global", "rib", "-a", "ipv4"])
                .lines()
                .filter(|l| l.contains(prefix))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn has(&self, prefix: &str) -> bool {
        self.route(prefix).contains(prefix)
    }

    fn flows(&self) -> String {
        match self.kind {
            PeerKind::Bird => self.peer(&["show", "route", "table", "flowtab4"]),
            PeerKind::Gobgp => self.gobgp(&["global", "rib", "-a", "ipv4-flowspec"]),
        }
    }

    fn until(&self, what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    }
}

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
    if have(bin) {
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
    let r = Rig::new(kind);
    let _coord = r.topo.coordinator_with(&[
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
