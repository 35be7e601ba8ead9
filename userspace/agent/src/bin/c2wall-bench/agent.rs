//! The agent process itself on the largest list, as deployed: started with
//! the list as its blocklist file and attached to a veth in a namespace of
//! its own. Measures its time from start to ready (`/readyz`: program
//! loaded and attached, the file enforced) and its resident memory then:
//! what is its own, and what is the BPF tables it maps (kernel memory,
//! which the kernel-memory figure already counts).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::wire::{enter, ip};

/// How long the agent may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// When its memory is read again: the load's leftovers (the previous
/// rule set's maps, a swapped-out hit array) are gone after a grace period.
const SETTLED_AFTER: Duration = Duration::from_secs(5);

pub struct AgentRun {
    pub entries: usize,
    pub ready_s: f64,
    /// At ready, and [`SETTLED_AFTER`] later.
    pub at_ready: Memory,
    pub settled: Memory,
}

/// VmRSS, RssAnon, RssFile (the mapped BPF tables), VmHWM; bytes.
pub struct Memory {
    pub rss: u64,
    pub anon: u64,
    pub mapped: u64,
    pub peak: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                * 1024
        };
        Ok(Memory {
            rss: kib("VmRSS:"),
            anon: kib("RssAnon:"),
            mapped: kib("RssFile:"),
            peak: kib("VmHWM:"),
        })
    }
}

/// The namespace, pin and state directories and the process; all removed
/// on drop, even after an error.
struct Place {
    ns: String,
    pins: PathBuf,
    state: PathBuf,
    child: Option<Child>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.pins);
        let _ = std::fs::remove_dir_all(&self.state);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// Runs `c2wall-agent` (beside this binary) on `list`; None if it is not
/// built.
pub fn run(list: &Path, entries: usize) -> Result<Option<AgentRun>> {
    let bin = std::env::current_exe()?.with_file_name("c2wall-agent");
    if !bin.exists() {
        return Ok(None);
    }
    let pid = std::process::id();
    let mut place = Place {
        ns: format!("c2wba-{pid}"),
        pins: PathBuf::from(format!("/sys/fs/bpf/c2wall-bench-agent-{pid}")),
        state: std::env::temp_dir().join(format!("c2wall-bench-agent-{pid}")),
        child: None,
    };
    ip(&["netns", "add", &place.ns])?;
    let ns = place.ns.clone();
    ip(&[
        "-n", &ns, "link", "add", "a0", "type", "veth", "peer", "name", "a1",
    ])?;
    for dev in ["a0", "a1", "lo"] {
        ip(&["-n", &ns, "link", "set", dev, "up"])?;
    }
    std::fs::create_dir_all(&place.state)?;
    let log = std::fs::File::create(place.state.join("agent.log"))?;
    let start = Instant::now();
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(&bin)
        .args([
            "-i",
            "a1",
            "--metrics-addr",
            "127.0.0.1:9469",
            "--detach-on-exit",
        ])
        .arg("--blocklist")
        .arg(list)
        .arg("--pin-dir")
        .arg(&place.pins)
        .arg("--state-dir")
        .arg(&place.state)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting c2wall-agent")?;
    // nsenter runs the agent in its own process: this is the agent's pid.
    let agent = child.id();
    place.child = Some(child);
    let ready = std::thread::scope(|s| {
        s.spawn(|| -> Result<f64> {
            enter(&format!("/run/netns/{ns}"))?;
            while start.elapsed() < READY_WITHIN {
                if ready() {
                    return Ok(start.elapsed().as_secs_f64());
                }
                if exited(agent) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            bail!("c2wall-agent did not become ready")
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the readiness thread panicked"))?
    });
    let ready_s = match ready {
        Ok(s) => s,
        Err(e) => {
            let log = std::fs::read_to_string(place.state.join("agent.log")).unwrap_or_default();
            bail!("{e}; its log:\n{log}");
        }
    };
    let at_ready = Memory::of(agent)?;
    std::thread::sleep(SETTLED_AFTER);
    Ok(Some(AgentRun {
        entries,
        ready_s,
        at_ready,
        settled: Memory::of(agent)?,
    }))
}

/// Whether the agent answers `/readyz` with 200 (this thread is in its
/// namespace).
fn ready() -> bool {
    let Ok(mut s) = TcpStream::connect("127.0.0.1:9469") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Whether process `pid` has exited (gone, or a zombie).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}
