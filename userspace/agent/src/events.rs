//! Reads the sampled drop events from the ring buffer into sightings, and
//! reports sightings to the coordinator.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use c2wall_model::{wire::identity_to_wire, Identity};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient};

use crate::fastmap::FastMap;
use crate::sightings::{event_from_bytes, Sightings};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Drains the ring buffer whenever it has data, until the task is dropped.
pub async fn read_events(ring: RingBuf<MapData>, sightings: Arc<Mutex<Sightings>>) {
    crate::ring::drain(ring, "sampled drops", |ring| {
        let (now, mono) = (unix_now(), monotonic_ns());
        let mut s = sightings.lock().expect("lock");
        while let Some(item) = ring.next() {
            if let Some(ev) = event_from_bytes(&item) {
                let age = mono.saturating_sub(ev.ts_ns) / 1_000_000_000;
                s.record(&ev, now - age as i64);
            }
        }
    })
    .await
}

/// Names entry ids, those still listed (one pass over the list per call,
/// so a report names its sightings in one call).
pub type IdentityFn = Arc<dyn Fn(&[u32]) -> FastMap<u32, Identity> + Send + Sync>;

/// Every `every`: expire old sightings, send the unreported ones. A failed
/// send keeps them for the next round.
pub async fn report_sightings(
    endpoints: Vec<tonic::transport::Endpoint>,
    agent_id: String,
    every: Duration,
    sightings: Arc<Mutex<Sightings>>,
    identity: IdentityFn,
    on_sent: Arc<dyn Fn(usize) + Send + Sync>,
    bearer: c2wall_model::wire::Bearer,
) {
    // Reports go to whichever replica answers (tonic balances over them and
    // leaves out those it cannot reach).
    let channel = tonic::transport::Channel::balance_list(
        endpoints
            .into_iter()
            .map(|e| e.connect_timeout(Duration::from_secs(3))),
    );
    let mut client = AgentSyncClient::with_interceptor(channel, bearer);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let batch = {
            let mut s = sightings.lock().expect("lock");
            s.expire(unix_now());
            s.unreported()
        };
        if batch.is_empty() {
            continue;
        }
        let ids: Vec<u32> = batch.iter().map(|(k, _)| k.entry_id).collect();
        let names = identity(&ids);
        let wire: Vec<pb::Sighting> = batch
            .iter()
            .filter_map(|(k, d)| {
                let entry = names.get(&k.entry_id)?;
                Some(pb::Sighting {
                    subscriber: k.subscriber.clone(),
                    entry: Some(identity_to_wire(entry)),
                    ip_protocol: k.protocol as u32,
                    cc_port: k.cc_port as u32,
                    direction: if k.direction as u32 == c2wall_common::DIR_TO_CC {
                        pb::Direction::To as i32
                    } else {
                        pb::Direction::From as i32
                    },
                    dropped: k.dropped,
                    first_seen: d.first_seen,
                    last_seen: d.last_seen,
                    count: d.count,
                })
            })
            .collect();
        let n = wire.len();
        let r = client
            .report_sightings(pb::SightingsReport {
                agent_id: agent_id.clone(),
                sightings: wire,
            })
            .await;
        match r {
            Ok(_) => {
                sightings.lock().expect("lock").reported(&batch);
                on_sent(n);
            }
            Err(e) => tracing::warn!(error = %e, pending = batch.len(), "reporting sightings"),
        }
    }
}
