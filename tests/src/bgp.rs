//! The BGP exporter's rig for tests and the bench: the coordinator and
//! `c2wall-bgp` in a topology's edge namespace, a real peer (BIRD 2 or
//! GoBGP) in a namespace of its own joined by a veth pair.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{veth, Netns};
use crate::process::{workspace_bin, Guarded};
use crate::topo::{Topo, COORDINATOR_URL};
use crate::unique;

pub const PEER_METRICS: &str = "127.0.0.1:9478";
pub const GR_SECONDS: u64 = 6;

#[derive(Clone, Copy, PartialEq)]
pub enum PeerKind {
    Bird,
    Gobgp,
}

pub struct Rig {
    pub kind: PeerKind,
    pub topo: Topo,
    _peer_ns: Netns,
    peer_sock: String,
    peer: Guarded,
    config: std::path::PathBuf,
}

const GOBGP_API: &str = "127.0.0.1:50052";

impl Rig {
    pub fn new(kind: PeerKind, max_routes: usize) -> Rig {
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
        let peer = spawn_peer(kind, &peer_ns, &topo.state, &peer_sock);
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
                 flowspec = true\nmax_routes = {max_routes}\ncommunity = \"64512:666\"\n\
                 password = \"c2wall-md5\"\n",
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
            peer,
            config,
        }
    }

    /// A fresh peer: the old one stopped (its sessions and routes gone),
    /// a new one started on the same config.
    pub fn restart_peer(&mut self) {
        let _ = self.peer.0.kill();
        let _ = self.peer.0.wait();
        let _ = std::fs::remove_file(&self.peer_sock);
        self.peer = spawn_peer(self.kind, &self._peer_ns, &self.topo.state, &self.peer_sock);
    }

    /// The exporter's metrics endpoint.
    pub fn exporter_metric(&self, series: &str) -> Option<f64> {
        self.topo.metric_at(PEER_METRICS, series)
    }

    pub fn exporter(&self) -> Guarded {
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
    pub fn peer(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/sbin/birdc")
            .args(["-s", &self.peer_sock])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gobgp` at the peer (in its namespace, on its API port).
    pub fn gobgp(&self, args: &[&str]) -> String {
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

    pub fn established(&self) -> bool {
        match self.kind {
            PeerKind::Bird => self.peer(&["show", "protocols"]).contains("Established"),
            PeerKind::Gobgp => self.gobgp(&["neighbor"]).contains("Establ"),
        }
    }

    /// IPv4 routes and flow rules the peer holds from the exporter.
    pub fn peer_routes(&self) -> usize {
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
    pub fn route(&self, prefix: &str) -> String {
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

    pub fn has(&self, prefix: &str) -> bool {
        self.route(prefix).contains(prefix)
    }

    pub fn flows(&self) -> String {
        match self.kind {
            PeerKind::Bird => self.peer(&["show", "route", "table", "flowtab4"]),
            PeerKind::Gobgp => self.gobgp(&["global", "rib", "-a", "ipv4-flowspec"]),
        }
    }

    pub fn until(&self, what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    }
}

/// Writes the peer's config (in `state`) and starts it in `ns`.
fn spawn_peer(
    kind: PeerKind,
    peer_ns: &Netns,
    state: &std::path::Path,
    peer_sock: &str,
) -> Guarded {
    let topo_state = state;
    let peer = match kind {
        PeerKind::Bird => {
            let conf = topo_state.join("peer.conf");
            std::fs::write(
                    &conf,
                    "router id 10.77.0.2;\nprotocol device {}\nflow4 table flowtab4;\nflow6 table flowtab6;\n\
                     protocol bgp exporter {\n  local 10.77.0.2 as 64512;\n  neighbor 10.77.0.1 as 64512;\n  password \"c2wall-md5\";\n\
                     \x20 graceful restart aware;\n  ipv4 { import all; export none; };\n\
                     \x20 ipv6 { import all; export none; };\n\
                     \x20 flow4 { table flowtab4; import all; export none; };\n\
                     \x20 flow6 { table flowtab6; import all; export none; };\n}\n",
                )
                .unwrap();
            let mut c = peer_ns.command("/usr/sbin/bird");
            c.arg("-f").arg("-c").arg(&conf).args(["-s", peer_sock]);
            c
        }
        PeerKind::Gobgp => {
            let conf = topo_state.join("gobgpd.toml");
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
                         peer-as = 64512\n    auth-password = \"c2wall-md5\"\n  [neighbors.graceful-restart.config]\n    \
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
    Guarded::spawn(peer)
}
