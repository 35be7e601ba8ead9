//! A real PostgreSQL server for one test: a cluster made with `initdb` in a
//! temporary directory (as the `postgres` user when the test runs as root:
//! PostgreSQL refuses to run as root), listening only on a Unix socket in
//! that directory, stopped and removed when dropped (also when the test
//! fails). Shared by the coordinator's tests, the end-to-end tests and the
//! sync bench (`#[path]`-included there).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TempPg {
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// The port (also the Unix socket's name): 5432 until [`TempPg::serve_tls`].
    port: std::sync::atomic::AtomicU16,
}

/// The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/setup.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

impl TempPg {
    pub fn start(tag: &str) -> TempPg {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("c2wall-pg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            run(Command::new("chown").args(["postgres:", dir.to_str().unwrap()]));
        }
        let pg = TempPg {
            dir,
            bin: bin_dir(),
            as_postgres,
            port: 5432.into(),
        };
        pg.cmd(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-U",
                "c2wall",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        std::fs::write(
            pg.data().join("postgresql.auto.conf"),
            format!(
                "listen_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n\
                 max_connections = 200\nshared_buffers = 32MB\n",
                pg.dir.display()
            ),
        )
        .unwrap();
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        run(c.args(args));
    }

    /// Starts the server (again, after [`TempPg::stop`]); returns once it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.join("server.log");
        self.cmd(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server at once (no checkpoint): as if its machine died.
    pub fn stop(&self) {
        self.cmd(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A new database; its URL.
    pub fn database(&self, name: &str) -> String {
        let exe = self.bin.join("createdb");
        let port = self.port().to_string();
        run(Command::new(exe).args([
            "-h",
            self.dir.to_str().unwrap(),
            "-p",
            &port,
            "-U",
            "c2wall",
            name,
        ]));
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://c2wall@/{db}?host={}&port={}",
            self.dir.display(),
            self.port()
        )
    }

    pub fn port(&self) -> u16 {
        self.port.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs SQL with psql; Err(stderr) when it fails.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port().to_string(),
                "-U",
                "c2wall",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Also serves TLS on 127.0.0.1 (a free port, returned) with `cert` and
    /// `key`, and refuses every TCP connection that is not TLS; restarts the
    /// server to take it.
    pub fn serve_tls(&self, cert: &Path, key: &Path) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
            let dst = self.data().join(to);
            std::fs::copy(from, &dst).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
            if self.as_postgres {
                run(Command::new("chown").args(["postgres:", dst.to_str().unwrap()]));
            }
        }
        let conf = self.data().join("postgresql.auto.conf");
        let mut c = std::fs::read_to_string(&conf).unwrap();
        c = c.replace("listen_addresses = ''", "listen_addresses = '127.0.0.1'");
        c.push_str(&format!(
            "port = {port}\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        ));
        std::fs::write(&conf, c).unwrap();
        std::fs::write(
            self.data().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        self.stop();
        self.port.store(port, std::sync::atomic::Ordering::Relaxed);
        self.start_again();
        port
    }

    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempPg {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let _ = c
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(c: &mut Command) {
    let out = c.output().expect("running a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
