//! Live frames over veth: the CPU a dropped frame costs with the program
//! attached natively to a veth, as an edge node runs it. BPF_PROG_TEST_RUN
//! times the program alone; this times the whole receive path around it
//! (the frame's ring, the conversion to an XDP buffer, the program, the
//! drop), plus the sender's side, which is the same for every program.
//!
//! A veth pair lives in a network namespace of its own. A thread in that
//! namespace, pinned to one CPU, sends the probe frames through a packet
//! socket on one end; the program under test, on the other end, drops them.
//! The kernel runs the receive path (veth's NAPI poll) in a softirq on the
//! sending CPU, when the send re-enables bottom halves, so that CPU does
//! all the work, and the wall time of a cell is that CPU's time (the
//! sender never waits). The kernel's tick accounting splits it: the
//! softirq share is the receive path, the rest the sender. Ticks are
//! samples (100 a second), so one cell's split is noisy; the sender's work
//! is the same for every program (same frames, same socket), so the report
//! pools it over all cells of a family and takes the receive path of each
//! cell as its precise total minus that pooled sender cost.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use aya::programs::{xdp::XdpMode, Xdp};

const TX: &str = "c2wb-tx";
const RX: &str = "c2wb-rx";
/// Frames per sendmmsg call.
const BATCH: usize = 64;
/// SOL_PACKET option: skip the qdisc, as a traffic generator does.
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// One cell's figures: CPU per frame in ns, all of it and the sender's
/// (non-softirq) share by this cell's ticks, with the frames and the ticks
/// they rest on.
pub struct Cost {
    pub total_ns: f64,
    pub sender_ns: f64,
    pub frames: u64,
    pub ticks: u64,
}

impl Cost {
    /// Slices of one cell as one: their frames and ticks summed, the
    /// per-frame figures weighted by frames.
    pub fn pool(slices: &[Cost]) -> Cost {
        let frames: u64 = slices.iter().map(|c| c.frames).sum();
        let per_frame = |f: fn(&Cost) -> f64| {
            slices.iter().map(|c| f(c) * c.frames as f64).sum::<f64>() / frames.max(1) as f64
        };
        Cost {
            total_ns: per_frame(|c| c.total_ns),
            sender_ns: per_frame(|c| c.sender_ns),
            frames,
            ticks: slices.iter().map(|c| c.ticks).sum(),
        }
    }
}

/// The namespace and its veth pair; removed on drop, even after an error.
pub struct Wire {
    ns: String,
}

impl Wire {
    pub fn new() -> Result<Wire> {
        let ns = format!("c2wb-{}", std::process::id());
        ip(&["netns", "add", &ns])?;
        let w = Wire { ns };
        ip(&[
            "-n", &w.ns, "link", "add", TX, "type", "veth", "peer", "name", RX,
        ])?;
        for dev in [TX, RX] {
            ip(&["-n", &w.ns, "link", "set", dev, "up"])?;
        }
        Ok(w)
    }

    /// Attaches `prog` natively to the receiving end, sends `frames`
    /// (round robin) for `run` from CPU `cpu`, detaches. Every frame must be
    /// one the program drops: a passed frame would be charged the stack's
    /// cost too.
    pub fn cost(
        &self,
        prog: &mut Xdp,
        frames: &[Vec<u8>],
        cpu: usize,
        run: Duration,
    ) -> Result<Cost> {
        let ns = format!("/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| -> Result<Cost> {
                enter(&ns)?;
                pin(cpu)?;
                let link = prog
                    .attach(RX, XdpMode::Driver)
                    .with_context(|| format!("attaching natively to {RX}"))?;
                let r = send(frames, cpu, run);
                prog.detach(link)?;
                r
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
        })
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Moves this thread (only) into the namespace at `path`.
pub fn enter(path: &str) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    // SAFETY: a valid namespace fd; setns changes only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn pin(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A packet socket bound to the sending end: protocol 0, so it receives
/// nothing and costs nothing on the way in.
fn socket() -> Result<OwnedFd> {
    let name = CString::new(TX)?;
    // SAFETY: plain syscalls on a fresh fd that OwnedFd then owns.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            bail!("packet socket: {}", std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
        let r = libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sll) as u32,
        );
        if r != 0 {
            bail!("binding to {TX}: {}", std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            &one as *const _ as *const libc::c_void,
            4,
        );
        Ok(fd)
    }
}

/// The CPU's (busy, softirq, all) ticks so far, from /proc/stat.
fn ticks(cpu: usize) -> Result<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let want = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&want))
        .with_context(|| format!("no {want}line in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    ensure!(v.len() >= 8, "short /proc/stat line: {line}");
    // user nice system idle iowait irq softirq steal
    let all: u64 = v[..8].iter().sum();
    let idle = v[3] + v[4];
    Ok((all - idle, v[6], all))
}

/// Frames the sending end could not hand over (veth's ring full), from
/// this thread's namespace's /proc/net/dev.
fn tx_dropped() -> Result<u64> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{TX}:")))
        .with_context(|| format!("{TX} not in /proc/net/dev"))?;
    let v: Vec<u64> = line
        .split(':')
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop
    v.get(11).copied().context("short /proc/net/dev line")
}

fn send(frames: &[Vec<u8>], cpu: usize, run: Duration) -> Result<Cost> {
    ensure!(!frames.is_empty(), "no frames to send");
    let fd = socket()?;
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    // SAFETY (below): each header points at one iovec of `iov`, which
    // outlives the sends; sendmmsg only reads the frames.
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut at = 0;
    let mut blast = |until: Instant| -> Result<u64> {
        let mut sent = 0u64;
        while Instant::now() < until {
            for _ in 0..64 {
                let n = BATCH.min(msgs.len() - at);
                let r =
                    unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs[at..].as_mut_ptr(), n as u32, 0) };
                if r < 0 {
                    bail!("sendmmsg on {TX}: {}", std::io::Error::last_os_error());
                }
                sent += r as u64;
                at = (at + r as usize) % msgs.len();
            }
        }
        Ok(sent)
    };
    // Warm the caches and the ring first.
    blast(Instant::now() + run / 10)?;
    let (busy0, soft0, all0) = ticks(cpu)?;
    let drop0 = tx_dropped()?;
    let t = Instant::now();
    let sent = blast(t + run)?;
    let wall = t.elapsed().as_nanos() as f64;
    let (busy1, soft1, all1) = ticks(cpu)?;
    let dropped = tx_dropped()? - drop0;
    let frames = sent.saturating_sub(dropped);
    ensure!(frames > 0, "no frame reached {RX}");
    let all = (all1 - all0).max(1) as f64;
    Ok(Cost {
        total_ns: wall * (busy1 - busy0) as f64 / all / frames as f64,
        sender_ns: wall * ((busy1 - busy0) - (soft1 - soft0)) as f64 / all / frames as f64,
        frames,
        ticks: all1 - all0,
    })
}
