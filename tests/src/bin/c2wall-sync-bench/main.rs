//! `c2wall-sync-bench`: coordinator-to-kernel figures. Needs root (kernel maps).
//!
//! Starts `c2wall-coordinator` (next to this binary) on loopback with a fresh
//! store (SQLite, or `--store postgres`: `--replicas` processes on one
//! PostgreSQL database started for the run), connects N idle subscriber
//! streams spread over the replicas, runs one agent sync client in process
//! against real (unpinned) kernel maps, on the last replica while publishes go
//! through the first, and measures:
//! - publish -> applied in the kernel maps, one entry at a time (p50, p99);
//!   with PostgreSQL, the same with one SQLite coordinator first, in the same
//!   run, and the ratio;
//! - a snapshot of M entries from the coordinator into the kernel maps, then
//!   into fresh agents again (the coordinator's copy then built already);
//! - each replica's resident memory;
//! - with replicas, `kill -9` of the agent's replica to a version published
//!   through another one applied.
//!
//! Everything runs as deployed: TLS with client certificates from a
//! development CA made for the run.

use std::{
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

mod snapshot;

#[derive(Parser)]
#[command(
    about = "Publish-to-enforced latency with many subscribers, and the time of a large snapshot into the kernel."
)]
struct Args {
    /// Idle subscriber streams connected besides the measured agent.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Single-entry publishes measured.
    #[arg(long, default_value_t = 200)]
    publishes: usize,
    /// Entries in the snapshot measurement.
    #[arg(long, default_value_t = 1_000_000)]
    snapshot_entries: usize,
    /// Single-entry changes measured once the large list is in place.
    #[arg(long, default_value_t = 100)]
    big_publishes: usize,
    /// Fresh agents that take the same snapshot again after the first one
    /// (which waits for the coordinator to build it), one after another:
    /// the spread of the figure, and the time once the coordinator has the
    /// snapshot at hand, as after a fleet restart.
    #[arg(long, default_value_t = 2)]
    snapshot_repeats: usize,
    /// Small run for CI: 100 subscribers, 20 publishes, 20,000 entries.
    #[arg(long)]
    quick: bool,
    /// The coordinators' store: `sqlite` (one coordinator) or `postgres`
    /// (`--replicas` of them on one database, SQLite measured first as the
    /// reference).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    store: String,
    /// Coordinator replicas with `--store postgres`.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

/// What one configuration measured.
struct Figures {
    p50: Duration,
    p99: Duration,
}

fn entry(i: usize) -> pb::Entry {
    // Distinct host addresses in 10.0.0.0/8 and 100.64.0.0/10.
    let a = if i < (1 << 24) {
        (10u32 << 24) | i as u32
    } else {
        (100u32 << 24 | 64 << 16) + (i as u32 - (1 << 24))
    };
    pb::Entry {
        key: Some(pb::EntryKey {
            prefix: std::net::Ipv4Addr::from(a).to_string(),
            ..Default::default()
        }),
        source: "bench".into(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.quick {
        a.subscribers = 100;
        a.publishes = 20;
        a.snapshot_entries = 20_000;
        a.big_publishes = 20;
    }
    anyhow::ensure!(unsafe { libc::geteuid() } == 0, "needs root (kernel maps)");
    let dir = std::env::temp_dir().join(format!("c2wall-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    make_pki(&dir)?;
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("c2wall-coordinator");
    let result = async {
        let postgres = a.store == "postgres";
        let reference = if postgres {
            println!("== reference: one coordinator on SQLite ==");
            let mut c = Coordinators::start(&bin, &dir, false, 1)?;
            Some(run(&a, &mut c, &dir, true).await?)
        } else {
            None
        };
        if postgres {
            println!("== {} replicas on one PostgreSQL database ==", a.replicas);
        }
        let mut c = Coordinators::start(&bin, &dir, postgres, a.replicas)?;
        let f = run(&a, &mut c, &dir, false).await?;
        if let Some(r) = reference {
            println!(
                "replicas on PostgreSQL / one SQLite coordinator: p50 x{:.2}, p99 x{:.2}",
                f.p50.as_secs_f64() / r.p50.as_secs_f64(),
                f.p99.as_secs_f64() / r.p99.as_secs_f64()
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    a: &Args,
    c: &mut Coordinators,
    dir: &std::path::Path,
    latency_only: bool,
) -> Result<Figures> {
    let urls = c.urls.clone();
    let n = urls.len();
    let url = urls[0].as_str();
    let mut publisher = None;
    for _ in 0..100 {
        if let Ok(c) = tls(dir, "bench").endpoint(url)?.connect().await {
            publisher = Some(PublisherClient::new(c));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut publisher = publisher.context("coordinator did not start")?;
    // The agent follows the last replica (publishes reach it through the
    // database), the others after it.
    let agent_urls: Vec<String> = urls[n - 1..]
        .iter()
        .chain(&urls[..n - 1])
        .cloned()
        .collect();
    for u in &urls[1..] {
        let mut up = false;
        for _ in 0..100 {
            if tls(dir, "bench").endpoint(u)?.connect().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(up, "replica {u} did not start");
    }

    // Idle subscribers: 100 streams per connection.
    let mut channels: Vec<Channel> = Vec::new();
    for k in 0..a.subscribers.div_ceil(100) {
        channels.push(tls(dir, "bench").endpoint(&urls[k % n])?.connect().await?);
    }
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut idle = Vec::new();
    for i in 0..a.subscribers {
        let mut c = AgentSyncClient::new(channels[i / 100].clone());
        let received = received.clone();
        idle.push(tokio::spawn(async move {
            let Ok(r) = c
                .subscribe(pb::SubscribeRequest {
                    agent_id: format!("idle-{i}"),
                    ..Default::default()
                })
                .await
            else {
                return;
            };
            let mut s = r.into_inner();
            while let Ok(Some(_)) = s.message().await {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let status = Arc::new(SyncStatus::default());
    let task = agent(&agent_urls, dir, status.clone(), dir.join("agent-set.pb")).await?;
    let v0 = publisher
        .publish(pb::PublishRequest {
            upserts: vec![entry(0)],
            ..Default::default()
        })
        .await?
        .into_inner()
        .version;
    wait_applied(&status, v0, Duration::from_secs(10)).await?;

    let mut lat = Vec::new();
    for i in 1..=a.publishes {
        let t = Instant::now();
        let v = publisher
            .publish(pb::PublishRequest {
                upserts: vec![entry(i)],
                ..Default::default()
            })
            .await?
            .into_inner()
            .version;
        wait_applied(&status, v, Duration::from_secs(10)).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "publish -> applied in kernel maps, {} single-entry publishes, {} other subscriber streams connected{}:",
        a.publishes,
        a.subscribers,
        if n > 1 {
            format!(" over {n} replicas (published through the first, the agent on the last)")
        } else {
            String::new()
        }
    );
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    println!("  (includes the coordinator's durable commit, the agent's digest check, slot patch and fsynced journal append)");
    anyhow::ensure!(
        pct(&lat, 0.99) < Duration::from_secs(1),
        "p99 publish -> applied is over 1 s"
    );
    let idle_msgs = received.load(Ordering::Relaxed);
    println!(
        "  idle subscribers received {idle_msgs} messages (expected >= {})",
        a.subscribers * (a.publishes + 1)
    );
    // Every idle stream got every version: the fan-out reached them all.
    anyhow::ensure!(
        idle_msgs >= (a.subscribers * (a.publishes + 1)) as u64,
        "idle subscribers received {idle_msgs} messages, fewer than one per version each"
    );
    task.abort();
    let figures = Figures {
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
    };
    // The idle subscribers served the latency figure; disconnected now so that
    // decoding their copies of the bulk fill does not compete with the agent.
    for t in idle {
        t.abort();
    }
    drop(channels);
    if latency_only {
        return Ok(figures);
    }

    snapshot::measure(a, c, dir, &mut publisher, &agent_urls).await?;
    Ok(figures)
}
