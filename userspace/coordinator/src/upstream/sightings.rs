//! Sightings shared with an upstream (opt-in, `share_sightings = "5m"`):
//! every interval, on the replica that leads, the sightings agents reported
//! of the upstream's entries are aggregated per entry and subscriber and
//! sent upstream as this coordinator's own report. Subscribers are
//! pseudonymised again with a key this coordinator keeps
//! (`upstream-NAME.sightings.key`, mode 0600), so the upstream sees neither
//! addresses nor the pseudonyms the ISP's own tools show; it can still count
//! distinct subscribers per entry. Sightings of the ISP's own entries stay
//! at the ISP.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use c2wall_model::{wire::identity_from_wire, Identity};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::transport::Endpoint;

use super::Follower;
use crate::core::{now, Coordinator};

/// At most this many sightings are read per interval.
const READ_LIMIT: usize = 10_000;

/// How a subscriber (an agent's pseudonym or address) appears upstream.
pub fn pseudonym(key: &[u8; 32], subscriber: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(subscriber.as_bytes());
    let tag = mac.finalize().into_bytes();
    let hex: String = tag[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("p-{hex}")
}

/// Sightings of `ours` (the upstream's entries), one per entry, pseudonym,
/// direction, verdict and port: counts summed, first and last seen widened.
pub fn aggregate(
    key: &[u8; 32],
    ours: &HashSet<Identity>,
    reported: impl IntoIterator<Item = pb::Sighting>,
) -> Vec<pb::Sighting> {
    let mut out: HashMap<(String, String, i32, bool, u32, u32), pb::Sighting> = HashMap::new();
    for s in reported {
        let Some(id) = s.entry.as_ref().and_then(|k| identity_from_wire(k).ok()) else {
            continue;
        };
        if !ours.contains(&id) {
            continue;
        }
        let who = pseudonym(key, &s.subscriber);
        let k = (
            id.to_string(),
            who.clone(),
            s.direction,
            s.dropped,
            s.ip_protocol,
            s.cc_port,
        );
        let e = out.entry(k).or_insert_with(|| pb::Sighting {
            subscriber: who,
            count: 0,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            ..s.clone()
        });
        e.count += s.count;
        e.first_seen = e.first_seen.min(s.first_seen);
        e.last_seen = e.last_seen.max(s.last_seen);
    }
    out.into_values().collect()
}

/// Sends what agents saw since the last interval, every `every`, until the
/// task is dropped. A failed send is retried with the next interval's.
pub async fn run(
    f: Arc<Follower>,
    coord: Arc<Coordinator>,
    endpoint: Endpoint,
    bearer: c2wall_model::wire::Bearer,
    every: Duration,
    key: [u8; 32],
) {
    let mut since = now();
    loop {
        tokio::time::sleep(every).await;
        let (c, me) = (coord.clone(), f.clone());
        let read = tokio::task::spawn_blocking(move || {
            if !c.leads() {
                return None;
            }
            let ours: HashSet<Identity> = me
                .synced
                .lock()
                .expect("lock")
                .set()
                .entries
                .keys()
                .cloned()
                .collect();
            let seen = c.sightings(None, None, since, READ_LIMIT).ok()?;
            Some(aggregate(&key, &ours, seen.into_iter().map(|(_, s)| s)))
        })
        .await;
        let Ok(Some(sightings)) = read else { continue };
        let t = now();
        if sightings.is_empty() {
            since = t;
            continue;
        }
        let n = sightings.len();
        let sent = async {
            let channel = endpoint.clone().connect().await?;
            AgentSyncClient::with_interceptor(channel, bearer.clone())
                .report_sightings(pb::SightingsReport {
                    agent_id: f.upstream.id.clone(),
                    sightings,
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        match sent {
            Ok(()) => {
                since = t;
                tracing::info!(upstream = %f.upstream.name, sightings = n, "sightings shared upstream");
            }
            Err(e) => tracing::warn!(upstream = %f.upstream.name, error = %e,
                "sharing sightings upstream failed; retried with the next interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sub: &str, prefix: &str, count: u64, at: i64) -> pb::Sighting {
        pb::Sighting {
            subscriber: sub.into(),
            entry: Some(pb::EntryKey {
                prefix: prefix.into(),
                ..Default::default()
            }),
            count,
            first_seen: at,
            last_seen: at,
            dropped: true,
            ..Default::default()
        }
    }

    #[test]
    fn only_upstream_entries_leave_pseudonymised_again_and_summed() {
        let key = [7u8; 32];
        let ours: HashSet<Identity> = [Identity {
            target: "192.0.2.1".parse().unwrap(),
            scope: None,
        }]
        .into();
        let out = aggregate(
            &key,
            &ours,
            [
                s("p-aaaa", "192.0.2.1", 3, 10),
                s("p-aaaa", "192.0.2.1", 2, 20),
                s("p-bbbb", "192.0.2.1", 1, 15),
                s("p-aaaa", "203.0.113.9", 5, 12),
            ],
        );
        assert_eq!(out.len(), 2, "two subscribers of the upstream entry");
        for x in &out {
            assert!(x.subscriber.starts_with("p-") && x.subscriber.len() == 26);
            assert!(!["p-aaaa", "p-bbbb"].contains(&x.subscriber.as_str()));
        }
        let a = out
            .iter()
            .find(|x| x.subscriber == pseudonym(&key, "p-aaaa"))
            .unwrap();
        assert_eq!((a.count, a.first_seen, a.last_seen), (5, 10, 20));
        assert_ne!(pseudonym(&key, "p-aaaa"), pseudonym(&[8u8; 32], "p-aaaa"));
    }
}
