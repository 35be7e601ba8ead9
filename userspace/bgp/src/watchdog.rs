//! Keeping BGP sessions up across an exporter restart. BIRD does not run as
//! the exporter's child: a watchdog (this binary, `c2wall-bgp watchdog`, in
//! a session of its own) runs it and kills it (SIGKILL: no Cease, so peers
//! hold the routes for the graceful-restart time) once the exporter's
//! heartbeat file is older than the grace period. An exporter started again
//! within the grace finds BIRD answering and adopts it: the sessions never
//! drop, whatever the peer's graceful-restart support. An exporter gone for
//! good: BIRD goes after the grace, and the peers withdraw after their
//! restart timer.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use crate::bird::Paths;
use crate::error::BgpError;

/// Seconds without a heartbeat after which the watchdog kills BIRD.
pub const GRACE_SECONDS: u64 = 5;

pub fn heartbeat_path(paths: &Paths) -> PathBuf {
    paths.dir.join("heartbeat")
}

/// The exporter is alive: touch the heartbeat file.
pub fn beat(paths: &Paths) {
    let p = heartbeat_path(paths);
    if let Err(e) = std::fs::write(&p, b"") {
        tracing::warn!(path = %p.display(), error = %e, "heartbeat");
    }
}

/// Starts `c2wall-bgp watchdog` (detached, a session of its own), which
/// starts BIRD on `paths`. `restarting`: an earlier BIRD announced routes.
pub fn start(bird: &Path, paths: &Paths, restarting: bool) -> Result<(), BgpError> {
    beat(paths);
    let exe = std::env::current_exe().map_err(|source| BgpError::Spawn {
        program: "c2wall-bgp".into(),
        source,
    })?;
    let mut c = Command::new(&exe);
    c.arg("watchdog")
        .arg("--heartbeat")
        .arg(heartbeat_path(paths))
        .arg("--")
        .arg(bird)
        .arg("-f");
    if restarting {
        // BIRD itself died: start as a restarting speaker (RFC 4724 R bit)
        // so helpers keep what the previous BIRD announced until this one
        // has sent its own.
        c.arg("-R");
    }
    c.arg("-c")
        .arg(paths.conf())
        .arg("-s")
        .arg(paths.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: setsid in the child before exec, async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c.spawn().map_err(|source| BgpError::Spawn {
        program: exe,
        source,
    })?;
    Ok(())
}

/// The watchdog: runs `bird_cmd` and kills it when the heartbeat goes
/// stale; returns when BIRD is gone.
pub fn run(heartbeat: &Path, bird_cmd: &[String]) -> Result<(), BgpError> {
    let (prog, args) = bird_cmd
        .split_first()
        .ok_or_else(|| BgpError::Bird("watchdog: no bird command".into()))?;
    let mut c = Command::new(prog);
    c.args(args).stdin(Stdio::null());
    // SAFETY: prctl in the child before exec, async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().map_err(|source| BgpError::Spawn {
        program: prog.into(),
        source,
    })?;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(status)) = child.try_wait() {
            tracing::error!(%status, "bird exited");
            return Ok(());
        }
        let age = std::fs::metadata(heartbeat)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or(Duration::MAX);
        if age > Duration::from_secs(GRACE_SECONDS) {
            tracing::warn!(
                "no exporter for {GRACE_SECONDS} s: stopping bird without a Cease (peers keep \
                 the routes for their graceful-restart time)"
            );
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
    }
}
