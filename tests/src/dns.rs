//! A coordinator serving RPZ and real resolvers as its secondaries, all in
//! one network namespace made for the test: Unbound (transfers allowed by
//! address: it cannot sign) and BIND 9 (TSIG), each authoritative for a
//! small `example.` zone that the policy rewrites. Removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::process::{capture, workspace_bin, Guarded};

pub const GRPC: &str = "127.0.0.1:50051";
pub const METRICS: &str = "127.0.0.1:9900";
pub const RPZ_PORT: u16 = 5353;
pub const UNBOUND_PORT: u16 = 5301;
pub const BIND_PORT: u16 = 5302;

/// The data both resolvers serve for `example.` (what the policy rewrites).
const EXAMPLE_ZONE: &str = "$TTL 30
example. IN SOA localhost. root.localhost. 1 60 60 600 30
example. IN NS localhost.
example. IN A 192.0.2.9
evil.example. IN A 192.0.2.10
cc.example. IN A 192.0.2.11
www.cc.example. IN A 192.0.2.12
watch.example. IN A 192.0.2.13
phish.example. IN A 192.0.2.14
garden.example. IN A 192.0.2.99
*.lat.example. IN A 192.0.2.50
";

pub struct Resolvers {
    pub unbound: bool,
    pub bind: bool,
}

impl Resolvers {
    /// Unbound and BIND 9 as secondaries.
    pub const BOTH: Resolvers = Resolvers {
        unbound: true,
        bind: true,
    };
    /// The coordinator alone (transfers checked with dig).
    pub const NONE: Resolvers = Resolvers {
        unbound: false,
        bind: false,
    };
}

pub struct RpzRig {
    // Dropped in order: processes first, then the namespace and the files.
    procs: Vec<Guarded>,
    pub ns: Netns,
    pub dir: PathBuf,
}

impl Drop for RpzRig {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl RpzRig {
    /// `rpz_extra`: more `[rpz]` lines; `coord_extra`: more top-level config.
    pub fn start(tag: &str, resolvers: Resolvers, rpz_extra: &str, coord_extra: &str) -> RpzRig {
        let name = crate::unique(tag);
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(dir.join("bind")).unwrap();
        let ns = Netns::new(name);
        let mut rig = RpzRig {
            procs: Vec::new(),
            ns,
            dir,
        };
        let d = rig.dir.display().to_string();
        let (ok, out) = capture(
            Command::new(workspace_bin("c2wall-coordinator"))
                .args(["tsig-keygen", "--name", "c2wall-rpz", "--out"])
                .arg(rig.dir.join("rpz.tsig")),
        );
        assert!(ok, "tsig-keygen: {out}");
        let mut notify = Vec::new();
        if resolvers.unbound {
            notify.push(format!("\"127.0.0.1:{UNBOUND_PORT}\""));
        }
        if resolvers.bind {
            notify.push(format!("\"127.0.0.1:{BIND_PORT}\""));
        }
        write(
            &rig.dir.join("coordinator.toml"),
            &format!(
                "listen = \"{GRPC}\"\nstore = \"{d}/c.db\"\nmetrics_addr = \"{METRICS}\"\n\
                 {coord_extra}\n[rpz]\nlisten = \"127.0.0.1:{RPZ_PORT}\"\n\
                 tsig_key_file = \"{d}/rpz.tsig\"\nallow_transfer = [\"127.0.0.1/32\"]\n\
                 notify = [{}]\nttl = 5\n{rpz_extra}\n",
                notify.join(", ")
            ),
        );
        let mut c = rig
            .ns
            .command(workspace_bin("c2wall-coordinator").to_str().unwrap());
        c.args(["-c", &format!("{d}/coordinator.toml"), "--insecure"])
            .stderr(std::fs::File::create(rig.dir.join("coordinator.log")).unwrap());
        rig.procs.push(Guarded::spawn(c));
        rig.wait_port(RPZ_PORT, "the coordinator's RPZ listener");
        if resolvers.unbound {
            rig.start_unbound();
        }
        if resolvers.bind {
            rig.start_bind();
        }
        rig
    }

    fn start_unbound(&mut self) {
        let d = self.dir.display().to_string();
        write(&self.dir.join("example.zone"), EXAMPLE_ZONE);
        write(
            &self.dir.join("unbound.conf"),
            &format!(
                "server:\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n\
                 pidfile: \"{d}/unbound.pid\"\n  interface: 127.0.0.1\n  port: {UNBOUND_PORT}\n\
                 do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n\
                 module-config: \"respip iterator\"\n  access-control: 127.0.0.0/8 allow\n\
                 do-not-query-localhost: no\n\
                 auth-zone:\n  name: \"example.\"\n  zonefile: \"{d}/example.zone\"\n\
                 for-downstream: no\n  for-upstream: yes\n\
                 rpz:\n  name: \"c2wall.rpz.\"\n  primary: 127.0.0.1@{RPZ_PORT}\n\
                 allow-notify: 127.0.0.1\n  rpz-log: yes\n\
                 remote-control:\n  control-enable: no\n"
            ),
        );
        let mut c = self.ns.command("unbound");
        c.args(["-d", "-c", &format!("{d}/unbound.conf")])
            .stderr(std::fs::File::create(self.dir.join("unbound.log")).unwrap());
        self.procs.push(Guarded::spawn(c));
        self.wait_port(UNBOUND_PORT, "unbound");
    }

    fn start_bind(&mut self) {
        let d = self.dir.display().to_string();
        write(&self.dir.join("bind/example.db"), EXAMPLE_ZONE);
        // min-update-interval 0: BIND otherwise applies a changed policy
        // zone at most once a minute (its default), whatever NOTIFY says.
        write(
            &self.dir.join("named.conf"),
            &format!(
                "options {{\n  directory \"{d}/bind\";\n  pid-file \"{d}/named.pid\";\n\
                 listen-on port {BIND_PORT} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n\
                 recursion yes;\n  allow-query {{ any; }};\n  allow-recursion {{ any; }};\n\
                 dnssec-validation no;\n  notify no;\n\
                 response-policy {{ zone \"c2wall.rpz\"; }} min-update-interval 0;\n}};\n\
                 include \"{d}/rpz.tsig\";\n\
                 server 127.0.0.1 {{ keys {{ c2wall-rpz; }}; }};\n\
                 zone \"c2wall.rpz\" {{ type secondary; primaries port {RPZ_PORT} \
                 {{ 127.0.0.1 key c2wall-rpz; }}; file \"rpz.db\"; allow-notify {{ 127.0.0.1; }}; }};\n\
                 zone \"example\" {{ type primary; file \"example.db\"; }};\n\
                 controls {{ }};\n"
            ),
        );
        let mut c = self.ns.command("named");
        c.args(["-g", "-c", &format!("{d}/named.conf")])
            .stderr(std::fs::File::create(self.dir.join("named.log")).unwrap());
        self.procs.push(Guarded::spawn(c));
        self.wait_port(BIND_PORT, "named");
    }

    fn wait_port(&self, port: u16, what: &str) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            let (_, out) = capture(self.ns.command("ss").args(["-lntH"]));
            if out.contains(&format!("127.0.0.1:{port} ")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: String = ["coordinator.log", "unbound.log", "named.log"]
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).ok()?;
                Some(format!("--- {f}\n{text}"))
            })
            .collect();
        let (_, ss) = capture(self.ns.command("ss").args(["-lntuH"]));
        panic!("{what} did not listen on {port} within 20 s; sockets:\n{ss}\n{logs}");
    }

    /// `c2wall ARGS` against the coordinator; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_cli(args);
        assert!(ok, "c2wall {}: {out}", args.join(" "));
        out
    }

    pub fn try_cli(&self, args: &[&str]) -> (bool, String) {
        capture(
            self.ns
                .command(workspace_bin("c2wall").to_str().unwrap())
                .args(["--coordinator", &format!("http://{GRPC}"), "--insecure"])
                .args(args),
        )
    }

    /// `dig ARGS` in the namespace, its whole output.
    pub fn dig(&self, args: &[&str]) -> String {
        capture(self.ns.command("dig").args(args)).1
    }

    /// The status (`NOERROR`, `NXDOMAIN`, ...) and answer lines a resolver
    /// gives for `name`.
    pub fn resolve(&self, port: u16, name: &str) -> (String, String) {
        let out = self.dig(&[
            "+noall",
            "+comments",
            "+answer",
            "+tries=1",
            "+time=1",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
            "A",
        ]);
        let status = out
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("NO ANSWER")
            .to_string();
        let answers = out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        (status, answers)
    }

    /// How long until the resolver on `port` answers `name` with `status`
    /// (polling), or None within `limit`.
    pub fn until_status(
        &self,
        port: u16,
        name: &str,
        status: &str,
        limit: Duration,
    ) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.resolve(port, name).0 == status {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// The coordinator's metrics text.
    pub fn metrics(&self) -> String {
        capture(
            self.ns
                .command("curl")
                .args(["-s", &format!("http://{METRICS}/metrics")]),
        )
        .1
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("rpz.tsig")
    }
}
