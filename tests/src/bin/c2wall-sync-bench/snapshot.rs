//! The large-list figures: a snapshot into a fresh agent (and again into
//! more fresh agents), single-entry changes on top of the large list, and
//! with replicas the failover of the agent's replica.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use anyhow::Result;
use c2wall_agent::sync::SyncStatus;
use c2wall_e2e::bench_agent::{agent, fresh_snapshots, wait_applied};
use c2wall_e2e::fleet::Coordinators;
use c2wall_e2e::stats::{ms, pct};
use c2wall_proto::v1::{self as pb, publisher_client::PublisherClient};
use tonic::transport::Channel;

use crate::{entry, Args};

/// Fills the coordinator to `a.snapshot_entries` and measures (see the
/// module doc); the agent follows `agent_urls`.
pub async fn measure(
    a: &Args,
    c: &mut Coordinators,
    dir: &std::path::Path,
    publisher: &mut PublisherClient<Channel>,
    agent_urls: &[String],
) -> Result<()> {
    let n = c.urls.len();
    // Snapshot: fill the coordinator, then a fresh agent subscribes from nothing.
    let t = Instant::now();
    let batch = 50_000;
    let mut latest = 0;
    let mut i = a.publishes + 1;
    while i < a.snapshot_entries {
        let n = batch.min(a.snapshot_entries - i);
        latest = publisher
            .publish(pb::PublishRequest {
                upserts: (i..i + n).map(entry).collect(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .version;
        i += n;
    }
    let fill = t.elapsed();
    let status = Arc::new(SyncStatus::default());
    let t = Instant::now();
    let task = agent(agent_urls, dir, status.clone(), dir.join("agent-set-2.pb")).await?;
    let setup = t.elapsed();
    let took = wait_applied(&status, latest, Duration::from_secs(600)).await?;
    let again = fresh_snapshots(agent_urls, dir, latest, a.snapshot_repeats).await?;
    // Single-entry changes on top of the large list, alternating a new entry
    // and a withdrawal of a listed one: the agent patches only the slots under
    // the changed entry, so this should not grow with the list.
    let mut big = Vec::new();
    for k in 0..a.big_publishes {
        let req = if k % 2 == 0 {
            pb::PublishRequest {
                upserts: vec![entry(a.snapshot_entries + k)],
                ..Default::default()
            }
        } else {
            pb::PublishRequest {
                withdrawals: vec![pb::Withdrawal {
                    key: entry(a.publishes + 1 + k).key,
                    source: String::new(),
                }],
                ..Default::default()
            }
        };
        let t = Instant::now();
        let v = publisher.publish(req).await?.into_inner().version;
        wait_applied(&status, v, Duration::from_secs(60)).await?;
        big.push(t.elapsed());
    }
    big.sort();
    for i in 0..n {
        if let Some(m) = c.rss_mib(i) {
            println!("replica {i} resident memory: {m:.0} MiB");
        }
    }
    if n > 1 {
        // The agent's replica dies; a version published through another one
        // must reach the kernel maps through the next replica on its list.
        let t = Instant::now();
        c.kill(n - 1);
        let v = publisher
            .publish(pb::PublishRequest {
                upserts: vec![entry(a.snapshot_entries + a.big_publishes + 1)],
                ..Default::default()
            })
            .await?
            .into_inner()
            .version;
        let took = wait_applied(&status, v, Duration::from_secs(30)).await?;
        println!(
            "kill -9 of the agent's replica -> a version published through another applied: {:.2} s ({} failover, {} snapshot(s) in all)",
            t.elapsed().as_secs_f64().max(took.as_secs_f64()),
            status.failovers.load(Ordering::Relaxed),
            status.snapshots.load(Ordering::Relaxed)
        );
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(5),
            "failover took over 5 s"
        );
        // The killed replica comes back: it reads the whole set from the
        // database before it listens, its memory then the cold-start figure.
        let t = Instant::now();
        c.restart(n - 1)?;
        println!(
            "replica {} restarted on the {}-entry set: listening after {:.2} s, resident memory {:.0} MiB",
            n - 1,
            a.snapshot_entries,
            t.elapsed().as_secs_f64(),
            c.rss_mib(n - 1).unwrap_or(f64::NAN)
        );
    }
    for i in 0..n {
        if let Some(m) = c.rss_mib(i) {
            anyhow::ensure!(m <= 1024.0, "replica {i} holds {m:.0} MiB, over 1 GiB");
        }
    }
    task.abort();
    println!(
        "snapshot of {} entries, coordinator -> verified -> compiled -> kernel maps -> persisted: {:.2} s",
        a.snapshot_entries,
        took.as_secs_f64()
    );
    if !again.is_empty() {
        let list: Vec<String> = again
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "  the same snapshot into {} fresh agents after it (the coordinator's copy built already, this process's heap grown): {} s",
            again.len(),
            list.join(", ")
        );
    }
    println!(
        "  (agent program load {:.2} s not included; coordinator fill {:.1} s in batches of {batch}; idle subscribers disconnected before the fill)",
        setup.as_secs_f64(),
        fill.as_secs_f64()
    );
    println!(
        "publish -> applied with {} entries listed ({} single-entry publishes and withdrawals):",
        a.snapshot_entries, a.big_publishes,
    );
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(pct(&big, 0.5)),
        ms(pct(&big, 0.99)),
        ms(*big.last().unwrap())
    );
    // The target: every agent enforces a change within a second.
    anyhow::ensure!(
        pct(&big, 0.99) < Duration::from_secs(1),
        "p99 publish -> applied is over 1 s"
    );
    Ok(())
}
