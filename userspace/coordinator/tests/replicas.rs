//! Several coordinator replicas on one real PostgreSQL database (started by
//! the test), served in-process: concurrent publishes through all of them,
//! agents on each, the database restarted under them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use c2wall_coordinator::{core::Coordinator, store::Location};
use c2wall_model::{Entry, Identity, Record, SetDigest};
use c2wall_proto::v1::{self as pb, sync_message::Kind};
use common::{pg::TempPg, rig_on, Rig};
use tonic::Streaming;

async fn replica(url: &str) -> Rig {
    let loc = Location::Postgres(url.to_string());
    // The store's client blocks: open it off the async workers, as main does.
    let coord = tokio::task::spawn_blocking(move || Coordinator::open(loc.open()?, 4096))
        .await
        .unwrap()
        .unwrap();
    rig_on(coord).await
}

/// An agent's view of one stream: verified as an agent verifies it.
struct Agent {
    stream: Streaming<pb::SyncMessage>,
    set: BTreeMap<Identity, Entry>,
    version: u64,
    snapshots: u32,
}

impl Agent {
    async fn on(rig: &Rig, version: u64, digest: Vec<u8>) -> Agent {
        Agent {
            stream: rig.subscribe(version, digest, false).await,
            set: BTreeMap::new(),
            version,
            snapshots: 0,
        }
    }

    /// Takes messages until `version`; every delta must follow the last one
    /// and leave the set at its digest.
    async fn until(&mut self, version: u64) {
        let mut chunks = Vec::new();
        while self.version < version {
            match common::next(&mut self.stream).await {
                Kind::Snapshot(c) => {
                    chunks.extend(c.entries);
                    if c.last {
                        self.set = chunks
                            .drain(..)
                            .map(|e| {
                                let r = Record::try_from(&e).unwrap();
                                (r.identity(), r.entry)
                            })
                            .collect();
                        self.version = c.version;
                        self.snapshots += 1;
                        self.check(&c.digest);
                    }
                }
                Kind::Delta(d) => {
                    assert_eq!(
                        d.previous_version, self.version,
                        "a gap before {}",
                        d.version
                    );
                    assert!(!d.more, "small deltas come whole");
                    for r in &d.removals {
                        self.set
                            .remove(&c2wall_model::wire::identity_from_wire(r).unwrap());
                    }
                    for e in &d.upserts {
                        let r = Record::try_from(e).unwrap();
                        self.set.insert(r.identity(), r.entry);
                    }
                    self.version = d.version;
                    self.check(&d.digest);
                }
                k => panic!("unexpected {k:?}"),
            }
        }
    }

    fn check(&self, digest: &[u8]) {
        assert_eq!(
            SetDigest::of(self.set.values()).to_bytes(),
            digest,
            "set at version {} does not match its digest",
            self.version
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_publish_concurrently_without_gaps_and_every_agent_ends_at_the_final_digest()
{
    let pg = TempPg::start("three");
    let url = pg.database("c2wall_three");
    let mut rigs = Vec::new();
    for _ in 0..3 {
        rigs.push(Arc::new(replica(&url).await));
    }
    let mut agents = Vec::new();
    for r in &rigs {
        for _ in 0..2 {
            agents.push(Agent::on(r, 0, vec![]).await);
        }
    }
    const EACH: u32 = 15;
    let mut tasks = Vec::new();
    for (i, r) in rigs.iter().enumerate() {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for n in 0..EACH {
                let p = format!("10.{i}.{n}.0/24");
                versions.push(r.publish(&[p.as_str()], &[]).await.unwrap().version);
            }
            versions
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.extend(t.await.unwrap());
    }
    versions.sort();
    let total = 3 * EACH as u64;
    assert_eq!(
        versions,
        (1..=total).collect::<Vec<_>>(),
        "unique and gapless"
    );
    let c = rigs[0].coord.clone();
    let history = tokio::task::spawn_blocking(move || c.history(0, 1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history.len() as u64, total);
    let last = history[0].digest.clone();
    for a in &mut agents {
        tokio::time::timeout(Duration::from_secs(10), a.until(total))
            .await
            .expect("agent caught up");
        assert_eq!(SetDigest::of(a.set.values()).to_bytes(), last);
        assert_eq!(a.set.len() as u64, total);
    }
    // Every replica's memory is at the final version and digest.
    for r in &rigs {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while r.coord.latest_version() < total {
            assert!(std::time::Instant::now() < deadline, "replica behind");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(r.coord.digest().to_bytes(), last);
    }
    // One replica leads once-only work at a time.
    let leaders = {
        let rs: Vec<_> = rigs.iter().map(|r| r.coord.clone()).collect();
        tokio::task::spawn_blocking(move || rs.iter().filter(|c| c.leads()).count())
            .await
            .unwrap()
    };
    assert_eq!(leaders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_fails_publishes_clearly_then_every_replica_catches_up() {
    let pg = TempPg::start("restart");
    let url = pg.database("c2wall_restart");
    let (a, b) = (replica(&url).await, replica(&url).await);
    let v1 = a.publish(&["192.0.2.0/24"], &[]).await.unwrap();
    let mut on_b = Agent::on(&b, 0, vec![]).await;
    on_b.until(v1.version).await;

    pg.stop();
    let e = a.publish(&["198.51.100.0/24"], &[]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("unreachable") && e.message().contains("c2wall_restart"),
        "{}",
        e.message()
    );
    pg.start_again();

    // Back: the same call succeeds (the store connects again), and the
    // other replica and its agent get the version without being told twice.
    let mut v2 = None;
    for _ in 0..50 {
        match a.publish(&["198.51.100.0/24"], &[]).await {
            Ok(v) => {
                v2 = Some(v);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let v2 = v2.expect("publishing works again once the database is back");
    assert_eq!(v2.version, v1.version + 1);
    tokio::time::timeout(Duration::from_secs(10), on_b.until(v2.version))
        .await
        .expect("the other replica's agent got the version");
    assert_eq!(
        on_b.snapshots, 1,
        "deltas after the restart, not a new snapshot"
    );
    assert_eq!(b.coord.digest().to_bytes(), v2.digest);
}
