//! Real coordinator processes on one real PostgreSQL: `kill -9` of the
//! replica that publishes, streams and runs the once-only work. Nothing it
//! acknowledged is lost, its agent resumes on the other replica with
//! deltas, and the survivor takes over expiry and runs it once.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c2wall_proto::v1::{
    self as pb, agent_sync_client::AgentSyncClient, publisher_client::PublisherClient,
    sync_message::Kind,
};
use common::pg::TempPg;
use tonic::transport::Channel;

struct Replica {
    child: Child,
    grpc: String,
    metrics: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn replica(url: &str) -> Replica {
    let (grpc, metrics) = (free_addr(), free_addr());
    let mut c = Command::new(env!("CARGO_BIN_EXE_c2wall-coordinator"));
    c.args([
        "--store",
        url,
        "--listen",
        &grpc,
        "--metrics-addr",
        &metrics,
    ])
    .args(["--insecure", "--heartbeat", "1"])
    .stdin(Stdio::null());
    if std::env::var_os("C2WALL_TEST_VERBOSE").is_none() {
        c.stderr(Stdio::null());
    }
    let r = Replica {
        child: c.spawn().unwrap(),
        grpc,
        metrics,
    };
    let t = Instant::now();
    while TcpStream::connect(&r.grpc).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "replica did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

/// One metric's value from the replica's /metrics.
fn metric(r: &Replica, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(&r.metrics).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

async fn channel(r: &Replica) -> Channel {
    Channel::from_shared(format!("http://{}", r.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn entry(prefix: &str, valid_until: i64) -> pb::Entry {
    pb::Entry {
        valid_until,
        ..common::entry(prefix)
    }
}

async fn publish(
    c: &mut PublisherClient<Channel>,
    e: pb::Entry,
) -> Result<pb::PublishResponse, tonic::Status> {
    c.publish(pb::PublishRequest {
        expedite: false,
        upserts: vec![e],
        withdrawals: vec![],
        reason: "failover test".into(),
    })
    .await
    .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_replica_loses_nothing_acknowledged_its_agent_resumes_by_deltas_and_expiry_moves(
) {
    let pg = TempPg::start("failover");
    let url = pg.database("c2wall_failover");
    let a = replica(&url);
    // A started first: it takes the lease at its first tick.
    let t = Instant::now();
    while metric(&a, "c2wall_coordinator_leads") != Some(1.0) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the first replica never led"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = replica(&url);
    let mut pa = PublisherClient::new(channel(&a).await);
    let expires_at = c2wall_coordinator::core::now() + 6;
    let v1 = publish(&mut pa, entry("203.0.113.0/24", expires_at))
        .await
        .unwrap();

    // An agent on A, current at v1.
    let mut stream = AgentSyncClient::new(channel(&a).await)
        .subscribe(pb::SubscribeRequest {
            agent_id: "edge-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut version, mut digest) = (0, vec![]);
    while version < v1.version {
        match common::next(&mut stream).await {
            Kind::Snapshot(s) => (version, digest) = (s.version, s.digest),
            Kind::Delta(d) => (version, digest) = (d.version, d.digest),
            k => panic!("{k:?}"),
        }
    }

    // Publishes flow through A; A is killed among them.
    let mut acked = Vec::new();
    let mut a = Some(a);
    for n in 0..200 {
        if n == 8 {
            drop(a.take()); // SIGKILL, then reaped
        }
        match publish(&mut pa, entry(&format!("10.9.{n}.0/24"), 0)).await {
            Ok(r) => acked.push((r.version, r.digest)),
            Err(_) if a.is_none() => break,
            Err(e) => panic!("publish before the kill: {e:?}"),
        }
    }
    assert!(acked.len() >= 8, "{} acknowledged", acked.len());
    let killed_at = Instant::now();
    // Every acknowledged version is in the database, as acknowledged.
    for (v, d) in &acked {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let got = pg
            .sql(
                "c2wall_failover",
                &format!("SELECT encode(digest, 'hex') FROM versions WHERE version = {v}"),
            )
            .unwrap();
        assert_eq!(got, hex, "version {v}");
    }
    // A's stream ended with A (nothing more comes from it).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(m)) => {
                    if let Some(Kind::Delta(d)) = m.kind {
                        (version, digest) = (d.version, d.digest);
                    }
                }
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the dead replica's stream did not end");

    // The agent resumes on B from its version: deltas, not a snapshot.
    let mut pb_ = PublisherClient::new(channel(&b).await);
    let mut on_b = AgentSyncClient::new(channel(&b).await)
        .subscribe(pb::SubscribeRequest {
            agent_id: "edge-1".into(),
            version,
            digest: digest.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let resumed = killed_at.elapsed();
    let last = publish(&mut pb_, entry("198.51.100.0/24", 0))
        .await
        .unwrap();
    while version < last.version {
        match common::next(&mut on_b).await {
            Kind::Delta(d) => {
                assert_eq!(d.previous_version, version, "a gap");
                (version, digest) = (d.version, d.digest);
            }
            k => panic!("expected deltas after the failover, got {k:?}"),
        }
    }
    assert_eq!(digest, last.digest);
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );

    // B took over the once-only work: the entry expires once, by B.
    let count = || {
        pg.sql(
            "c2wall_failover",
            "SELECT count(*) FROM versions WHERE actor = 'expiry'",
        )
        .unwrap()
        .parse::<u32>()
        .unwrap()
    };
    let t = Instant::now();
    while count() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nobody ran expiry after the leader died"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(metric(&b, "c2wall_coordinator_leads"), Some(1.0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(), 1, "expiry ran more than once");
    let left = pg
        .sql(
            "c2wall_failover",
            "SELECT count(*) FROM records WHERE key LIKE '203.0.113.0/24%'",
        )
        .unwrap();
    assert_eq!(left, "0", "the expired entry is gone");
}
