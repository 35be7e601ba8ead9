//! Coordinators for the benchmarks: one on a SQLite file, or several
//! replicas on one PostgreSQL database (a server started for the run), each
//! a real `c2wall-coordinator` process on its own loopback port with TLS
//! from the run's CA. Killed (and the database removed) when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::pg::TempPg;

pub struct Coordinators {
    /// The replicas' URLs, in order.
    pub urls: Vec<String>,
    procs: Vec<Option<Child>>,
    _pg: Option<TempPg>,
}

impl Coordinators {
    /// `replicas` coordinators on PostgreSQL when `postgres`, else one on SQLite.
    pub fn start(bin: &Path, dir: &Path, postgres: bool, replicas: usize) -> Result<Self> {
        let (store, pg) = if postgres {
            let pg = TempPg::start("bench");
            (pg.database("c2wall_bench"), Some(pg))
        } else {
            (dir.join("c.db").display().to_string(), None)
        };
        let mut c = Coordinators {
            urls: Vec::new(),
            procs: Vec::new(),
            _pg: pg,
        };
        // Every simulated agent connects from 127.0.0.1, where a fleet would
        // come from as many addresses: the per-peer bounds are lifted (and
        // 100 streams share a connection, as the bench opens them).
        let config = dir.join("bench-coordinator.toml");
        std::fs::write(
            &config,
            "[limits]\nmax_connections = 100000\nmax_connections_per_peer = 100000\n\
             max_streams_per_connection = 100\n",
        )?;
        for _ in 0..if postgres { replicas.max(1) } else { 1 } {
            let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            let child = Command::new(bin)
                .args(["--listen", &listen.to_string(), "--store", &store])
                .arg("--config")
                .arg(&config)
                .args([
                    "--heartbeat",
                    "5",
                    "--live-buffer",
                    "4096",
                    "--metrics-addr",
                    "127.0.0.1:0",
                ])
                // Bulk fills are the point here, not the change breaker.
                .args(["--breaker-entries", "100000000"])
                // Publishes back to back are the measurement, not the rate limit.
                .args(["--publish-rate", "1000000", "--publish-burst", "1000000"])
                .arg("--tls-client-ca")
                .arg(dir.join("pki/ca.crt"))
                .arg("--tls-cert")
                .arg(dir.join("pki/coord.crt"))
                .arg("--tls-key")
                .arg(dir.join("pki/coord.key"))
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            c.procs.push(Some(child));
            c.urls.push(format!("https://{listen}"));
        }
        Ok(c)
    }

    /// `kill -9` of replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Resident memory of replica `i`, MiB.
    pub fn rss_mib(&self, i: usize) -> Option<f64> {
        let pid = self.procs[i].as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }
}

impl Drop for Coordinators {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}
