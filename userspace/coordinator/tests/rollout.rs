//! Staged rollout, in-process: 50 simulated agents (5 labelled
//! role=canary) on one coordinator with a canary stage (2 s soak) and the
//! rest. A healthy version reaches the canaries first and the others only
//! after the soak; a version whose new entry many distinct subscribers
//! reach is stopped at the canaries and undone without a human, and the
//! other agents never apply it; an expedited version reaches everyone at
//! once.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2wall_coordinator::rollout::{
    policy::{Policy, RolloutConfig},
    Rollout,
};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient, sync_message::Kind};
use tonic::transport::Channel;

const SOAK: Duration = Duration::from_secs(2);
const AGENTS: usize = 50;
const CANARIES: usize = 5;

fn policy() -> Policy {
    let c: RolloutConfig = toml::from_str(
        "[[stage]]\nname = \"canary\"\nselector = \"role=canary\"\nsoak = \"2s\"\n\
         [[stage]]\nname = \"all\"\nsoak = \"0s\"\n\
         [bounds]\nmax_subscribers_per_new_entry = 10\n",
    )
    .unwrap();
    Policy::from_config(&c).unwrap().unwrap()
}

/// What one simulated agent went through.
#[derive(Default)]
struct Seen {
    /// Every version it applied, in order.
    versions: Vec<u64>,
    /// Every prefix it was ever told to enforce.
    prefixes: BTreeSet<c2wall_model::Prefix>,
}

fn name(i: usize) -> String {
    format!("edge-{i:02}")
}

/// An agent: subscribes with its labels, applies what it is sent and
/// reports its version and digest after each.
fn agent(channel: Channel, i: usize) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut labels = HashMap::new();
        if i < CANARIES {
            labels.insert("role".to_string(), "canary".to_string());
        }
        let mut c = AgentSyncClient::new(channel);
        let mut s = c
            .subscribe(pb::SubscribeRequest {
                agent_id: name(i),
                labels: labels.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while let Ok(Some(m)) = s.message().await {
            let (version, digest, upserts) = match m.kind {
                Some(Kind::Snapshot(c)) if c.last => (c.version, c.digest, c.entries),
                Some(Kind::Delta(d)) => (d.version, d.digest, d.upserts),
                _ => continue,
            };
            {
                let mut s = seen.lock().unwrap();
                s.versions.push(version);
                for e in upserts {
                    s.prefixes.insert(e.key.unwrap().prefix.parse().unwrap());
                }
            }
            c.report_status(pb::AgentStatus {
                agent_id: name(i),
                applied_version: version,
                digest,
                interfaces: vec!["e0".into()],
                labels: labels.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
    out
}

fn at(seen: &[Arc<Mutex<Seen>>], range: std::ops::Range<usize>, v: u64) -> bool {
    seen[range]
        .iter()
        .all(|s| s.lock().unwrap().versions.last() == Some(&v))
}

async fn until(what: &str, limit: Duration, f: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_go_canary_first_a_bad_one_is_undone_there_and_expedite_skips_the_stages() {
    let rollout = Rollout::new(Some(policy()));
    let ro = rollout.clone();
    let rig = common::rig_with(common::store_path("rollout"), move |s| s.rollout = ro, 1024).await;
    // The leader's tick, as the coordinator runs it (every second there;
    // faster here so the soak, not the tick, sets the pace).
    let (coord, ro) = (rig.coord.clone(), rollout.clone());
    std::thread::spawn(move || loop {
        if Arc::strong_count(&coord) == 1 {
            return;
        }
        ro.tick(&coord).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    let seen: Vec<_> = (0..AGENTS).map(|i| agent(rig.channel(), i)).collect();
    until("every agent subscribed", Duration::from_secs(10), || {
        at(&seen, 0..AGENTS, 0)
    })
    .await;

    // A healthy version: canaries at once, the rest after the soak.
    let t = Instant::now();
    let v1 = rig.publish(&["198.51.100.1"], &[]).await.unwrap().version;
    until("canaries at v1", Duration::from_secs(2), || {
        at(&seen, 0..CANARIES, v1)
    })
    .await;
    assert!(at(&seen, CANARIES..AGENTS, 0), "the rest wait for the soak");
    // Meanwhile the status never calls v1 done (every stage at it, every
    // agent reporting it) while any agent lacks it.
    let mut p = rig.publisher();
    let limit = Instant::now() + SOAK + Duration::from_secs(3);
    loop {
        let everyone = at(&seen, 0..AGENTS, v1);
        let st = p
            .rollout_status(pb::RolloutStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        let done = st
            .stages
            .iter()
            .all(|s| s.ceiling >= v1 && s.agents_at_ceiling == s.agents);
        if done {
            assert!(
                at(&seen, 0..AGENTS, v1),
                "status says done while an agent lacks v1"
            );
            assert_eq!(
                st.stages.iter().map(|s| s.agents).sum::<u32>(),
                AGENTS as u32
            );
            break;
        }
        assert!(!everyone || Instant::now() < limit, "never done");
        assert!(
            Instant::now() < limit + Duration::from_secs(2),
            "v1 not done in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t.elapsed() >= SOAK, "promoted after {:?}", t.elapsed());

    // A bad version: its new entry is reached by many distinct subscribers
    // behind the canaries (a popular service, not a C&C).
    let t = Instant::now();
    let bad = "203.0.113.9";
    let bad_prefix: c2wall_model::Prefix = bad.parse().unwrap();
    let v2 = rig.publish(&[bad], &[]).await.unwrap().version;
    until("canaries at v2", Duration::from_secs(2), || {
        at(&seen, 0..CANARIES, v2)
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for i in 0..CANARIES {
        let sightings = (0..4)
            .map(|k| pb::Sighting {
                subscriber: format!("p-{i}-{k}"),
                entry: Some(common::key(bad)),
                dropped: true,
                first_seen: now,
                last_seen: now,
                count: 3,
                ..Default::default()
            })
            .collect();
        AgentSyncClient::new(rig.channel())
            .report_sightings(pb::SightingsReport {
                agent_id: name(i),
                sightings,
            })
            .await
            .unwrap();
    }
    let v3 = v2 + 1;
    let took = until(
        "everyone at the undo version",
        SOAK + Duration::from_secs(2),
        || at(&seen, 0..AGENTS, v3),
    )
    .await;
    eprintln!(
        "bad version published -> undone everywhere: {:?}",
        t.elapsed()
    );
    assert!(took < SOAK + Duration::from_secs(2));
    for (i, s) in seen.iter().enumerate().skip(CANARIES) {
        let s = s.lock().unwrap();
        assert!(
            !s.prefixes.contains(&bad_prefix),
            "{} was sent {bad}",
            name(i)
        );
        assert!(
            !s.versions.contains(&v2),
            "{} applied v2: {:?}",
            name(i),
            s.versions
        );
    }
    assert!(seen[0].lock().unwrap().prefixes.contains(&bad_prefix));
    let status = p
        .rollout_status(pb::RolloutStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.frozen.contains("version 2") && status.frozen.contains("20 distinct subscribers"),
        "{}",
        status.frozen
    );
    assert_eq!(status.rollback_version, v3);
    let audit = p
        .audit(pb::AuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit
            .events
            .iter()
            .any(|e| e.actor == "rollout" && e.action == "rollout-freeze"),
        "the freeze is audited"
    );
    assert!(audit
        .events
        .iter()
        .any(|e| e.actor == "rollout" && e.action == "rollback"));

    // The metrics say so (the alert rule C2wallRolloutFrozen reads this).
    {
        use prometheus::core::Collector;
        let c =
            c2wall_coordinator::rollout::collector::RolloutCollector::new(rollout.clone()).unwrap();
        let fams = c.collect();
        let value = |n: &str| {
            fams.iter()
                .find(|f| f.name() == n)
                .map(|f| {
                    let m = &f.get_metric()[0];
                    m.get_gauge().get_value() + m.get_counter().get_value()
                })
                .unwrap()
        };
        assert_eq!(value("c2wall_rollout_frozen"), 1.0);
        assert_eq!(value("c2wall_rollout_breaches_total"), 1.0);
    }

    // Frozen: nothing new moves until an admin resumes.
    let v4 = rig.publish(&["198.51.100.4"], &[]).await.unwrap().version;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(at(&seen, 0..AGENTS, v3), "held while frozen");
    p.rollout_resume(pb::RolloutResumeRequest {
        reason: "false alarm checked".into(),
    })
    .await
    .unwrap();
    until(
        "canaries at v4 after resume",
        Duration::from_secs(2),
        || at(&seen, 0..CANARIES, v4),
    )
    .await;

    // Expedited: everyone at once, no soak.
    let t = Instant::now();
    let v5 = p
        .publish(pb::PublishRequest {
            upserts: vec![common::entry("198.51.100.5")],
            reason: "urgent".into(),
            expedite: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    until(
        "everyone at the expedited version",
        Duration::from_secs(1),
        || at(&seen, 0..AGENTS, v5),
    )
    .await;
    assert!(t.elapsed() < SOAK);
}
