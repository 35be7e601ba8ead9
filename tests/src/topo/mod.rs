//! A subscriber, an edge router running the agent, and a network side holding a
//! "C&C" host and a benign host, each in its own namespace:
//!
//! ```text
//! sub [s0 198.51.100.10 2001:db8:a::10] -- [e0] edge [e1] -- [n0 203.0.113.66/.77 2001:db8:b::66/::77] net
//! ```
//! Documentation ranges only; everything is deleted when the value is dropped.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    netns::{veth, Netns},
    process::{workspace_bin, Guarded, PinDir},
    unique,
};

pub const SUB4: &str = "198.51.100.10";
pub const SUB6: &str = "2001:db8:a::10";
pub const CC4: &str = "203.0.113.66";
pub const CC6: &str = "2001:db8:b::66";
pub const OK4: &str = "203.0.113.77";
pub const OK6: &str = "2001:db8:b::77";
pub const METRICS: &str = "127.0.0.1:9469";

pub struct Topo {
    // Dropped in this order: pins (detach), then namespaces.
    pub pins: PinDir,
    pub state: PathBuf,
    pub sub: Netns,
    pub edge: Netns,
    pub net: Netns,
}

impl Topo {
    pub fn new(tag: &str) -> Topo {
        let id = unique(tag);
        let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/{id}")));
        let state = std::env::temp_dir().join(format!("{id}-state"));
        let sub = Netns::new(format!("{id}s"));
        let edge = Netns::new(format!("{id}e"));
        let net = Netns::new(format!("{id}n"));
        veth(&sub, "s0", &edge, "e0");
        veth(&edge, "e1", &net, "n0");
        sub.ip(&["addr", "add", "198.51.100.10/24", "dev", "s0"]);
        sub.ip(&["addr", "add", "2001:db8:a::10/64", "dev", "s0", "nodad"]);
        sub.ip(&["route", "add", "default", "via", "198.51.100.1"]);
        sub.ip(&["-6", "route", "add", "default", "via", "2001:db8:a::1"]);
        edge.ip(&["addr", "add", "198.51.100.1/24", "dev", "e0"]);
        edge.ip(&["addr", "add", "2001:db8:a::1/64", "dev", "e0", "nodad"]);
        edge.ip(&["addr", "add", "203.0.113.1/24", "dev", "e1"]);
        edge.ip(&["addr", "add", "2001:db8:b::1/64", "dev", "e1", "nodad"]);
        edge.sysctl("net.ipv4.ip_forward", "1");
        edge.sysctl("net.ipv6.conf.all.forwarding", "1");
        for a in ["203.0.113.66/24", "203.0.113.77/24"] {
            net.ip(&["addr", "add", a, "dev", "n0"]);
        }
        for a in ["2001:db8:b::66/64", "2001:db8:b::77/64"] {
            net.ip(&["addr", "add", a, "dev", "n0", "nodad"]);
        }
        net.ip(&["route", "add", "default", "via", "203.0.113.1"]);
        net.ip(&["-6", "route", "add", "default", "via", "2001:db8:b::1"]);
        Topo {
            pins,
            state,
            sub,
            edge,
            net,
        }
    }

    /// Starts the agent in the edge namespace on e0 and e1 and waits until it is
    /// ready. `extra` are further flags (blocklist, mode, ...).
    pub fn agent(&self, extra: &[&str]) -> Guarded {
        self.agent_in(&self.state, extra)
    }

    /// The agent with its state in `state` (e.g. a small filesystem).
    pub fn agent_in(&self, state: &std::path::Path, extra: &[&str]) -> Guarded {
        let c = self
            .edge
            .command(workspace_bin("c2wall-agent").to_str().unwrap());
        self.spawn_agent(c, state, extra)
    }

    /// The agent seeing `hosts` as its /etc/hosts, through a mount namespace
    /// of its own (nothing else on the machine sees the file): e.g. one name
    /// for several coordinator replicas, as a DNS name with several
    /// addresses would be.
    pub fn agent_with_hosts(&self, hosts: &str, extra: &[&str]) -> Guarded {
        std::fs::create_dir_all(&self.state).unwrap();
        let file = self.state.join("hosts");
        std::fs::write(&file, hosts).unwrap();
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
            .arg(&file)
            .arg("nsenter")
            .arg(format!("--net={}", self.edge.path()))
            .arg(workspace_bin("c2wall-agent"));
        self.spawn_agent(c, &self.state, extra)
    }

    fn spawn_agent(&self, mut c: Command, state: &std::path::Path, extra: &[&str]) -> Guarded {
        c.args(["-i", "e0", "-i", "e1", "--metrics-addr", METRICS])
            .arg("--pin-dir")
            .arg(&self.pins.0)
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .stdin(Stdio::null());
        if std::env::var_os("C2WALL_TEST_VERBOSE").is_none() {
            c.stderr(Stdio::null());
        }
        let agent = Guarded::spawn(c);
        self.wait_ready(Duration::from_secs(20));
        agent
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(body) = self.http_get("/readyz") {
                if body.contains("ready") && !body.contains("not ready") {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "agent not ready after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The body of a GET to `addr` inside the edge namespace (None unless 200).
    pub fn get_body(&self, addr: &str, path: &str) -> Option<String> {
        let (addr, path) = (addr.to_string(), path.to_string());
        self.edge
            .run(move || {
                let mut s =
                    TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                let (head, body) = out.split_once("\r\n\r\n")?;
                head.starts_with("HTTP/1.0 200 OK")
                    .then(|| body.to_string())
                    .or_else(|| head.contains(" 200 ").then(|| body.to_string()))
            })
            .join()
            .ok()
            .flatten()
    }

    /// GET from the agent's HTTP server (inside the edge namespace).
    pub fn http_get(&self, path: &str) -> Option<String> {
        self.http_get_at(METRICS, path)
    }

    /// The body of a GET to `addr` (in the edge namespace), None unless 200.
    pub fn http_get_at(&self, addr: &str, path: &str) -> Option<String> {
        let (addr, path) = (
            addr.parse::<std::net::SocketAddr>().unwrap(),
            path.to_string(),
        );
        self.edge
            .run(move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .join()
            .ok()
            .flatten()
    }

    /// Sends `n` UDP datagrams from `src` (in `from`) to `dst`:`port` (in `to`)
    /// and returns how many arrived.
    pub fn udp(
        &self,
        from: &Netns,
        src: &str,
        to: &Netns,
        dst: &str,
        port: u16,
        n: usize,
    ) -> usize {
        let dst_addr: SocketAddr = sockaddr(dst, port);
        let src_addr: SocketAddr = sockaddr(src, 0);
        let rx = to.run(move || {
            let s = UdpSocket::bind(dst_addr).expect("bind receiver");
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let mut got = 0;
            let mut buf = [0u8; 64];
            while s.recv(&mut buf).is_ok() {
                got += 1;
            }
            got
        });
        std::thread::sleep(Duration::from_millis(100));
        from.run(move || {
            let s = UdpSocket::bind(src_addr).expect("bind sender");
            for i in 0..n {
                // A send may fail while the neighbour is resolved; count it as sent.
                let _ = s.send_to(&(i as u32).to_be_bytes(), dst_addr);
                std::thread::sleep(Duration::from_micros(300));
            }
        })
        .join()
        .unwrap();
        rx.join().unwrap()
    }

    /// Whether a TCP connection from `src` (in `from`) to `dst`:`port` (in
    /// `to`) is established within a second.
    pub fn tcp_connects(&self, from: &Netns, src: &str, to: &Netns, dst: &str, port: u16) -> bool {
        let dst_addr: SocketAddr = sockaddr(dst, port);
        let src_addr: SocketAddr = sockaddr(src, 0);
        let listener = to.run(move || {
            let l = std::net::TcpListener::bind(dst_addr).expect("bind listener");
            l.set_nonblocking(true).unwrap();
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(2000) {
                if l.accept().is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        });
        std::thread::sleep(Duration::from_millis(100));
        let connected = from
            .run(move || {
                let sock = socket2::Socket::new(
                    socket2::Domain::for_address(dst_addr),
                    socket2::Type::STREAM,
                    None,
                )
                .unwrap();
                sock.bind(&src_addr.into()).unwrap();
                sock.connect_timeout(&dst_addr.into(), Duration::from_millis(1000))
                    .is_ok()
            })
            .join()
            .unwrap();
        let accepted = listener.join().unwrap();
        connected && accepted
    }

    /// Kernel counters read from the pins.
    pub fn counters(&self) -> Vec<u64> {
        use c2wall_agent::dataplane::Dataplane;
        let maps = c2wall_agent::kernel::KernelMaps::from_pins(
            &self
                .pins
                .0
                .join(format!("maps-v{}", c2wall_common::ABI_VERSION)),
        )
        .expect("pinned maps");
        maps.counters().expect("counters")
    }

    pub fn write_list(&self, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(&self.state).unwrap();
        let p = self.state.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `c2wall-agent detach` on these pins; returns its stdout (panics if it fails).
    pub fn detach(&self) -> String {
        let out = Command::new(workspace_bin("c2wall-agent"))
            .args(["detach", "--pin-dir"])
            .arg(&self.pins.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "detach: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the agent binary's `status` against these pins.
    pub fn status(&self) -> String {
        let out = Command::new(workspace_bin("c2wall-agent"))
            .arg("status")
            .arg("--pin-dir")
            .arg(&self.pins.0)
            .arg("--state-dir")
            .arg(&self.state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn sockaddr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

mod control;
pub use control::{json_u64, COORDINATOR, COORDINATOR_URL, OPERATOR, REPLICAS_NAME};
