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
    /// How each replica was started, to start it again.
    cmds: Vec<Vec<std::ffi::OsString>>,
    bin: std::path::PathBuf,
    _pg: Option<TempPg>,
}

impl Coordinators {
    /// `replicas` coordinators on PostgreSQL when `postgres`, else one on SQLite.
    pub fn start(bin: &Path, dir: &Path, postgres: bool, replicas: usize) -> Result<Self> {
        Self::start_with(bin, dir, "c", postgres, replicas, "", &[])
    }

    /// As [`Coordinators::start`], the SQLite store and config named `name`
    /// in `dir` (several coordinators side by side), `config` appended to the
    /// config file and `extra` flags added.
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        name: &str,
        postgres: bool,
        replicas: usize,
        config_extra: &str,
        extra: &[std::ffi::OsString],
    ) -> Result<Self> {
        let (store, pg) = if postgres {
            let pg = TempPg::start("bench");
            (pg.database("c2wall_bench"), Some(pg))
        } else {
            (dir.join(format!("{name}.db")).display().to_string(), None)
        };
        let mut c = Coordinators {
            urls: Vec::new(),
            procs: Vec::new(),
            cmds: Vec::new(),
            bin: bin.to_path_buf(),
            _pg: pg,
        };
        // Every simulated agent connects from 127.0.0.1, where a fleet would
        // come from as many addresses: the per-peer bounds are lifted (and
        // 100 streams share a connection, as the bench opens them).
        let config = dir.join(format!("{name}-coordinator.toml"));
        std::fs::write(
            &config,
            format!(
                "[limits]\nmax_connections = 100000\nmax_connections_per_peer = 100000\n\
                 max_streams_per_connection = 100\n{config_extra}"
            ),
        )?;
        for _ in 0..if postgres { replicas.max(1) } else { 1 } {
            let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            let listen_arg = listen.to_string();
            let flags = [
                "--listen",
                &listen_arg,
                "--store",
                &store,
                "--heartbeat",
                "5",
                "--live-buffer",
                "4096",
                "--metrics-addr",
                "127.0.0.1:0",
                // Bulk fills are the point here, not the change breaker.
                "--breaker-entries",
                "100000000",
                // Publishes back to back are the measurement, not the rate limit.
                "--publish-rate",
                "1000000",
                "--publish-burst",
                "1000000",
            ]
            .map(std::ffi::OsString::from);
            let files = [
                ("--config", config.clone()),
                ("--tls-client-ca", dir.join("pki/ca.crt")),
                ("--tls-cert", dir.join("pki/coord.crt")),
                ("--tls-key", dir.join("pki/coord.key")),
            ]
            .into_iter()
            .flat_map(|(flag, path)| [flag.into(), path.into_os_string()]);
            let args: Vec<std::ffi::OsString> = flags
                .into_iter()
                .chain(files)
                .chain(extra.iter().cloned())
                .collect();
            let child = spawn(bin, &args)?;
            c.cmds.push(args);
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

    /// Starts replica `i` again (after [`Coordinators::kill`]) and waits
    /// until it accepts connections: it has loaded its set by then.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let child = spawn(&self.bin, &self.cmds[i])?;
        self.procs[i] = Some(child);
        let addr = self.urls[i].trim_start_matches("https://").to_string();
        let t = std::time::Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            anyhow::ensure!(
                t.elapsed() < std::time::Duration::from_secs(600),
                "replica {i} did not listen on {addr} within 600 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Resident memory of replica `i`, MiB.
    pub fn rss_mib(&self, i: usize) -> Option<f64> {
        crate::stats::rss_mib(self.procs[i].as_ref()?.id())
    }
}

impl Drop for Coordinators {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

fn spawn(bin: &Path, args: &[std::ffi::OsString]) -> Result<Child> {
    Command::new(bin)
        .args(args)
        .stderr(if std::env::var_os("C2WALL_BENCH_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}
