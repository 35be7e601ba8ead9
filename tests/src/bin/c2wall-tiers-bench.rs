//! `c2wall-tiers-bench`: centre -> ISP -> edge figures. Needs root (kernel
//! maps).
//!
//! Starts two `c2wall-coordinator` processes (next to this binary) on
//! loopback, each on its own SQLite store with its own signing key: the
//! centre, and an ISP coordinator following it (`[[upstream]]`, a
//! `downstream` certificate, the centre's key trusted). N idle subscriber
//! streams connect to the ISP; one agent sync client runs in process on real
//! (unpinned) kernel maps, following the ISP. It measures:
//! - publish at the centre -> applied in the edge's kernel maps (two hops:
//!   the centre's commit and stream, the ISP's verification, policy, import,
//!   commit and stream, the agent's apply), one entry at a time, p50/p99;
//! - catch-up: the ISP killed, K single-entry versions published at the
//!   centre, the ISP started again: time until it has verified and imported
//!   the centre's latest version (`c2wall feed list`'s upstream row), and
//!   until the edge enforces it.
//!
//! Everything runs as deployed: TLS with client certificates from a
//! development CA made for the run, signed versions.

use std::{
    ffi::OsString,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use c2wall_agent::sync::SyncStatus;
use c2wall_e2e::bench_agent::{agent, make_pki, tls, wait_applied};
use c2wall_e2e::fleet::Coordinators;
use c2wall_e2e::stats::{ms, pct};
use c2wall_proto::v1::{
    self as pb, agent_sync_client::AgentSyncClient, publisher_client::PublisherClient,
};
use clap::Parser;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    about = "Publish at the centre -> enforced at an ISP's edge (two hops), and an ISP's catch-up after the centre moved on."
)]
struct Args {
    /// Idle subscriber streams on the ISP's coordinator besides the measured agent.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Single-entry publishes at the centre measured.
    #[arg(long, default_value_t = 200)]
    publishes: usize,
    /// Centre versions published while the ISP is away.
    #[arg(long, default_value_t = 10_000)]
    away_versions: usize,
    /// Entries the centre lists before the measurement (its list's size).
    #[arg(long, default_value_t = 0)]
    base_entries: usize,
    /// Small run for CI: 100 subscribers, 20 publishes, 500 versions away.
    #[arg(long)]
    quick: bool,
}

fn entry(i: usize) -> pb::Entry {
    pb::Entry {
        key: Some(pb::EntryKey {
            prefix: std::net::Ipv4Addr::from((10u32 << 24) | i as u32).to_string(),
            ..Default::default()
        }),
        source: "bench".into(),
        category: "mirai".into(),
        ..Default::default()
    }
}

async fn connect(dir: &std::path::Path, url: &str) -> Result<Channel> {
    for _ in 0..200 {
        if let Ok(c) = tls(dir, "bench").endpoint(url)?.connect().await {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not start")
}

/// A signing key file and its public key, via `c2wall-coordinator keygen`.
fn keygen(bin: &std::path::Path, path: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new(bin)
        .args(["keygen", "--out"])
        .arg(path)
        .output()?;
    anyhow::ensure!(out.status.success(), "keygen failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The ISP's view of its upstream: (verified upstream version, entries).
async fn upstream_row(isp: &mut PublisherClient<Channel>) -> Result<(u64, u64)> {
    let r = isp.feeds(pb::FeedsRequest {}).await?.into_inner();
    let row = r
        .feeds
        .iter()
        .find(|f| f.format == "upstream")
        .context("no upstream row")?;
    Ok((row.upstream_version, row.entries))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.quick {
        a.subscribers = 100;
        a.publishes = 20;
        a.away_versions = 500;
    }
    anyhow::ensure!(unsafe { libc::geteuid() } == 0, "needs root (kernel maps)");
    let dir = std::env::temp_dir().join(format!("c2wall-tiers-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(a: &Args, dir: &std::path::Path) -> Result<()> {
    make_pki(dir)?;
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("c2wall-coordinator");
    let centre_pub = keygen(&bin, &dir.join("centre.key"))?;
    keygen(&bin, &dir.join("isp.key"))?;
    let flag = |f: &str, v: &std::path::Path| [OsString::from(f), v.as_os_str().to_owned()];
    let mut centre_flags: Vec<OsString> = flag("--signing-key", &dir.join("centre.key")).into();
    // The ISP's catch-up is by deltas: the centre keeps more than it misses.
    centre_flags.extend([
        "--retention".into(),
        (a.away_versions * 2).to_string().into(),
    ]);
    let centre = Coordinators::start_with(&bin, dir, "centre", false, 1, "", &centre_flags)?;
    let centre_url = centre.urls[0].clone();
    let mut publisher = PublisherClient::new(connect(dir, &centre_url).await?);
    let pki = dir.join("pki");
    let upstream = format!(
        "[[upstream]]\nname = \"centre\"\nurl = \"{centre_url}\"\ntls_ca = \"{}\"\n\
         tls_cert = \"{}\"\ntls_key = \"{}\"\ntrust_keys = [\"{centre_pub}\"]\n\
         action = \"drop\"\nstate_dir = \"{}\"\n",
        pki.join("ca.crt").display(),
        pki.join("bench-isp.crt").display(),
        pki.join("bench-isp.key").display(),
        dir.join("isp-state").display()
    );
    let isp_flags: Vec<OsString> = flag("--signing-key", &dir.join("isp.key")).into();
    let mut isp = Coordinators::start_with(&bin, dir, "isp", false, 1, &upstream, &isp_flags)?;
    let isp_url = isp.urls[0].clone();
    let mut isp_client = PublisherClient::new(connect(dir, &isp_url).await?);

    let status = Arc::new(SyncStatus::default());
    let edge = agent(
        std::slice::from_ref(&isp_url),
        dir,
        status.clone(),
        dir.join("edge-set.pb"),
    )
    .await?;
    let applied = || status.applied_version.load(Ordering::Relaxed);
    let publish = |p: &mut PublisherClient<Channel>, i: usize| {
        let mut p = p.clone();
        async move {
            Ok::<u64, anyhow::Error>(
                p.publish(pb::PublishRequest {
                    upserts: vec![entry(i)],
                    ..Default::default()
                })
                .await?
                .into_inner()
                .version,
            )
        }
    };
    // Warm-up: the first entry through both tiers.
    let before = applied();
    publish(&mut publisher, 0).await?;
    wait_above(&status, before, Duration::from_secs(20)).await?;
    // The centre's list at its size (in 100.64.0.0/10, apart from the
    // measured entries), through both tiers.
    if a.base_entries > 0 {
        let t = Instant::now();
        let mut i = 0;
        while i < a.base_entries {
            let n = 50_000.min(a.base_entries - i);
            let before = applied();
            publisher
                .publish(pb::PublishRequest {
                    upserts: (i..i + n)
                        .map(|k| pb::Entry {
                            key: Some(pb::EntryKey {
                                prefix: std::net::Ipv4Addr::from(
                                    (100u32 << 24 | 64 << 16) + k as u32,
                                )
                                .to_string(),
                                ..Default::default()
                            }),
                            source: "bench-base".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .await?;
            wait_above(&status, before, Duration::from_secs(600)).await?;
            i += n;
        }
        println!(
            "the centre's list: {} entries, through the ISP to the edge in {:.1} s",
            a.base_entries,
            t.elapsed().as_secs_f64()
        );
    }

    // Idle edge streams on the ISP (100 per connection), connected once the
    // list is in place; measured only once each holds its snapshot, so that
    // decoding their copies does not compete with the measured agent.
    let mut channels = Vec::new();
    for _ in 0..a.subscribers.div_ceil(100) {
        channels.push(connect(dir, &isp_url).await?);
    }
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut idle = Vec::new();
    for i in 0..a.subscribers {
        let mut c = AgentSyncClient::new(channels[i / 100].clone());
        let ready = ready.clone();
        idle.push(tokio::spawn(async move {
            if let Ok(r) = c
                .subscribe(pb::SubscribeRequest {
                    agent_id: format!("idle-{i}"),
                    ..Default::default()
                })
                .await
            {
                let mut s = r.into_inner();
                let mut counted = false;
                while let Ok(Some(m)) = s.message().await {
                    // In step once the snapshot's last chunk (or, for a
                    // stream that needed none, a delta) is in: the control
                    // frame and heartbeats come first and say nothing.
                    let whole = match &m.kind {
                        Some(pb::sync_message::Kind::Snapshot(c)) => c.last,
                        Some(pb::sync_message::Kind::Delta(_)) => true,
                        _ => false,
                    };
                    if whole && !counted {
                        counted = true;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let t = Instant::now();
    while ready.load(Ordering::Relaxed) < a.subscribers {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(1200),
            "idle streams not synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut lat = Vec::new();
    for i in 1..=a.publishes {
        let before = applied();
        let t = Instant::now();
        publish(&mut publisher, i).await?;
        wait_above(&status, before, Duration::from_secs(10)).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "publish at the centre -> applied in the ISP's edge kernel maps (two hops), {} single-entry \
         publishes, {} other edge streams on the ISP's coordinator, {} entries listed:",
        a.publishes, a.subscribers, a.base_entries
    );
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(*lat.last().unwrap())
    );
    anyhow::ensure!(p99 < Duration::from_secs(1), "p99 over 1 s");

    // Catch-up: the ISP away while the centre makes `away_versions` versions.
    isp.kill(0);
    let t = Instant::now();
    let first = a.publishes + 1;
    let mut latest = 0;
    for i in first..first + a.away_versions {
        latest = publish(&mut publisher, i).await?;
    }
    println!(
        "the ISP away: {} centre versions published in {:.1} s",
        a.away_versions,
        t.elapsed().as_secs_f64()
    );
    let expected = (first + a.away_versions + a.base_entries) as u64;
    let edge_before = applied();
    let t = Instant::now();
    isp.restart(0)?;
    let mut isp_client_new = PublisherClient::new(connect(dir, &isp_url).await?);
    std::mem::swap(&mut isp_client, &mut isp_client_new);
    loop {
        if let Ok((v, n)) = upstream_row(&mut isp_client).await {
            if v == latest && n == expected {
                break;
            }
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "the ISP did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let caught_up = t.elapsed();
    wait_above(&status, edge_before, Duration::from_secs(60)).await?;
    let at_edge = t.elapsed();
    println!(
        "catch-up after {} centre versions away: ISP started -> centre's latest verified and \
         imported {:.2} s ({expected} upstream entries), -> enforced at the edge {:.2} s",
        a.away_versions,
        caught_up.as_secs_f64(),
        at_edge.as_secs_f64()
    );
    edge.abort();
    for t in idle {
        t.abort();
    }
    drop(centre);
    Ok(())
}

/// Waits until the edge applies a version above `v`.
async fn wait_above(status: &SyncStatus, v: u64, timeout: Duration) -> Result<()> {
    wait_applied(status, v + 1, timeout).await.map(|_| ())
}
