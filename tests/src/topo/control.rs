//! The control side of a [`Topo`]: the test's PKI, the coordinator in the
//! edge namespace, the CLI, and the agent's metrics and applied version.

use super::*;

pub const COORDINATOR: &str = "127.0.0.1:50051";
pub const COORDINATOR_URL: &str = "https://127.0.0.1:50051";
/// A name the coordinator's certificate carries, for tests that resolve it
/// to several replicas (see [`Topo::agent_with_hosts`]).
pub const REPLICAS_NAME: &str = "centre.c2wall.test";
/// The admin certificate the CLI presents by default (and the audit actor).
pub const OPERATOR: &str = "test";

impl Topo {
    /// The test's development CA (in the state dir) with the coordinator's
    /// certificate (127.0.0.1) and the operator's (admin); made on first use.
    pub fn pki(&self) -> PathBuf {
        let dir = self.state.join("pki");
        if !dir.join("ca.crt").exists() {
            c2wall_tls::ca::init(&dir, 30).unwrap();
            self.issue("coordinator", "coord");
            self.issue("admin", OPERATOR);
        }
        dir
    }

    /// A version-signing key in the state dir: its path and public key (hex).
    pub fn keygen(&self, name: &str) -> (PathBuf, String) {
        std::fs::create_dir_all(&self.state).unwrap();
        let path = self.state.join(name);
        let out = Command::new(workspace_bin("c2wall-coordinator"))
            .args(["keygen", "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
        (path, public)
    }

    /// Issues (once) certificate `name` with `role` from the test's CA.
    pub fn issue(&self, role: &str, name: &str) {
        let dir = self.state.join("pki");
        if dir.join(format!("{name}.crt")).exists() {
            return;
        }
        let req = c2wall_tls::ca::Request {
            identity: c2wall_tls::CertIdentity::new(role, name).unwrap(),
            dns: if role == "coordinator" {
                vec![REPLICAS_NAME.to_string()]
            } else {
                vec![]
            },
            // 127.0.0.2: a second replica under the same name.
            ips: if role == "coordinator" {
                vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()]
            } else {
                vec![]
            },
            days: 30,
        };
        c2wall_tls::ca::issue(&dir, &req).unwrap();
    }

    /// Agent flags to follow the coordinator as `name` (an agent certificate
    /// of that name is issued).
    pub fn sync_args(&self, name: &str) -> Vec<String> {
        let pki = self.pki();
        self.issue("agent", name);
        let f = |n: &str| pki.join(n).to_str().unwrap().to_string();
        vec![
            "--coordinator".into(),
            COORDINATOR_URL.into(),
            "--tls-ca".into(),
            f("ca.crt"),
            "--tls-cert".into(),
            f(&format!("{name}.crt")),
            "--tls-key".into(),
            f(&format!("{name}.key")),
        ]
    }

    /// Starts the coordinator in the edge namespace with its store in the
    /// test's state dir, and waits until it accepts connections.
    pub fn coordinator(&self) -> Guarded {
        self.coordinator_with(&[])
    }

    /// The coordinator with extra flags (e.g. `--config FILE`).
    pub fn coordinator_with(&self, extra: &[&str]) -> Guarded {
        self.coordinator_at(COORDINATOR, extra)
    }

    /// A coordinator listening on `listen` (in the edge namespace; several
    /// replicas each need their own `--metrics-addr` in `extra`), with its
    /// store in the state dir unless `extra` names one.
    pub fn coordinator_at(&self, listen: &str, extra: &[&str]) -> Guarded {
        std::fs::create_dir_all(&self.state).unwrap();
        let mut c = self
            .edge
            .command(workspace_bin("c2wall-coordinator").to_str().unwrap());
        c.args(["--listen", listen, "--heartbeat", "1"]);
        if !extra.contains(&"--store") {
            c.arg("--store").arg(self.state.join("coordinator.db"));
        }
        if !extra.contains(&"--insecure") {
            let pki = self.pki();
            c.arg("--tls-cert")
                .arg(pki.join("coord.crt"))
                .arg("--tls-key")
                .arg(pki.join("coord.key"))
                .arg("--tls-client-ca")
                .arg(pki.join("ca.crt"));
        }
        c.args(extra).stdin(Stdio::null());
        if std::env::var_os("C2WALL_TEST_VERBOSE").is_none() {
            c.stderr(Stdio::null());
        }
        let g = Guarded::spawn(c);
        let start = Instant::now();
        let listen = listen.to_string();
        let up = || {
            let l = listen.clone();
            self.edge
                .run(move || TcpStream::connect(&l).is_ok())
                .join()
                .unwrap_or(false)
        };
        while !up() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "coordinator did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    /// Runs `c2wall ARGS` against the coordinator as the operator (admin
    /// certificate); returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_as(Some(OPERATOR), args)
    }

    /// `c2wall ARGS` presenting certificate `cert` (None: none, so only a
    /// `--token` in ARGS identifies the caller).
    pub fn cli_as(&self, cert: Option<&str>, args: &[&str]) -> (bool, String, String) {
        self.cli_to(COORDINATOR_URL, cert, args)
    }

    /// `c2wall ARGS` against the coordinator at `url` (e.g. an upstream
    /// centre beside the edge's own coordinator).
    pub fn cli_to(&self, url: &str, cert: Option<&str>, args: &[&str]) -> (bool, String, String) {
        let pki = self.pki();
        let mut c = self.edge.command(workspace_bin("c2wall").to_str().unwrap());
        c.args(["--coordinator", url, "--actor", "test"])
            .arg("--tls-ca")
            .arg(pki.join("ca.crt"));
        if let Some(name) = cert {
            c.arg("--tls-cert")
                .arg(pki.join(format!("{name}.crt")))
                .arg("--tls-key")
                .arg(pki.join(format!("{name}.key")));
        }
        let out = c.args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Publishes and returns the version.
    pub fn publish(&self, args: &[&str]) -> u64 {
        let mut all = vec!["publish", "--json"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.cli(&all);
        assert!(ok, "publish {args:?}: {err}");
        json_u64(&out, "version").expect("version in the output")
    }

    /// The value of one metric line (`name{labels}` exactly as exposed).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metric_at(METRICS, series)
    }

    /// The value of one metric line from the metrics endpoint at `addr`.
    pub fn metric_at(&self, addr: &str, series: &str) -> Option<f64> {
        let body = self.http_get_at(addr, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until the agent enforces coordinator `version`; returns how long it took.
    pub fn wait_applied(&self, version: u64, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.metric("c2wall_sync_applied_version") == Some(version as f64) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "agent did not apply version {version} within {timeout:?} (at {:?})",
                self.metric("c2wall_sync_applied_version")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A top-level unsigned number from a flat JSON object.
pub fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    json[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
