//! `c2wall-bgp-bench`: the BGP exporter's figures, as root. A coordinator
//! and `c2wall-bgp` (driving its BIRD) in one namespace, a BIRD 2 router as
//! the peer in another (the rig the tests use). Measures:
//! - publish -> route in the peer's table (`c2wall publish` at the
//!   coordinator to the route in the peer's RIB), p50/p99 over N publishes;
//! - N routes announced to a fresh peer: the list in place, the peer
//!   restarted, until its table holds them all;
//! - the exporter's and its BIRD's resident memory with those routes.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use c2wall_e2e::bgp::{PeerKind, Rig};
use c2wall_e2e::stats::{ms, pct, rss_mib};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Publish-to-route latency at a BGP peer, and a large list to a fresh peer.")]
struct Args {
    /// Single-entry publishes measured.
    #[arg(long, default_value_t = 200)]
    publishes: usize,
    /// Routes in the large list.
    #[arg(long, default_value_t = 100_000)]
    routes: usize,
    /// Small run for CI: 10 publishes, 2,000 routes.
    #[arg(long)]
    quick: bool,
}

/// The BIRD the exporter runs (the watchdog's child, by its config path).
fn bird_pid(state: &std::path::Path) -> Option<u32> {
    let conf = state.join("bgp/bird/bird.conf").display().to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.starts_with("/usr/sbin/bird\0") && cmd.contains(&conf)).then_some(pid)
    })
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.quick {
        a.publishes = 10;
        a.routes = 2_000;
    }
    ensure!(unsafe { libc::geteuid() } == 0, "needs root (namespaces)");
    let mut r = Rig::new(PeerKind::Bird, a.routes + a.publishes + 10);
    let key = r.topo.state.join("signing.key");
    let _coord = r.topo.coordinator_with(&[
        "--signing-key",
        key.to_str().context("path")?,
        "--breaker-entries",
        "100000000",
        "--publish-rate",
        "100000",
        "--publish-burst",
        "100000",
    ]);
    let exporter = r.exporter();
    r.until("the session", Duration::from_secs(30), || r.established());

    let mut lat = Vec::new();
    for i in 0..a.publishes {
        let addr = format!("203.0.113.{}", i % 250 + 1);
        let prefix = format!("{addr}/32");
        let t = Instant::now();
        r.topo.publish(&[&addr]);
        r.until("the route", Duration::from_secs(10), || r.has(&prefix));
        lat.push(t.elapsed());
        let (ok, _, err) = r.topo.cli(&["withdraw", &addr]);
        ensure!(ok, "withdraw: {err}");
        r.until("the withdrawal", Duration::from_secs(10), || {
            !r.has(&prefix)
        });
    }
    lat.sort();
    println!(
        "publish -> route in the peer's table ({} single-entry publishes, each withdrawn after; \
         includes the c2wall CLI process and the peer query):",
        a.publishes
    );
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );

    // The large list: one import, then a fresh peer.
    let list = r.topo.state.join("big.txt");
    let text: String = (0..a.routes)
        .map(|i| format!("10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    std::fs::write(&list, text)?;
    let (ok, _, err) = r.topo.cli(&[
        "feed",
        "import",
        "--format",
        "plain",
        "--source",
        "bench",
        "--action",
        "drop",
        "--force",
        list.to_str().context("path")?,
    ]);
    ensure!(ok, "import: {err}");
    let t = Instant::now();
    r.until("the exporter's list", Duration::from_secs(600), || {
        r.exporter_metric("c2wall_bgp_routes{kind=\"rtbh\",peer=\"rr1\"}") == Some(a.routes as f64)
    });
    println!(
        "{} entries imported -> planned and handed to BIRD: {:.2} s",
        a.routes,
        t.elapsed().as_secs_f64()
    );
    r.until("the peer's table", Duration::from_secs(600), || {
        r.peer_routes() >= a.routes
    });
    r.restart_peer();
    let t = Instant::now();
    r.until("a fresh peer's table", Duration::from_secs(600), || {
        r.peer_routes() >= a.routes
    });
    println!(
        "{} routes announced to a fresh peer (peer started -> all in its table): {:.2} s",
        a.routes,
        t.elapsed().as_secs_f64()
    );
    let bird = bird_pid(&r.topo.state).and_then(rss_mib);
    println!(
        "memory with {} routes: c2wall-bgp {:.1} MiB, its BIRD {:.1} MiB",
        a.routes,
        rss_mib(exporter.pid()).unwrap_or(f64::NAN),
        bird.unwrap_or(f64::NAN)
    );
    drop(exporter);
    Ok(())
}
