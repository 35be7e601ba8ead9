//! The coordinator's gRPC services in-process over a duplex pipe, and helpers.
#![allow(dead_code)] // each test binary uses a different part of the helpers

pub mod pg;
pub mod upstream;

use std::{sync::Arc, time::Duration};

use c2wall_coordinator::{
    core::Coordinator,
    service::{Service, ACTOR_HEADER},
    store::sqlite::SqliteStore,
    sync::AgentSyncServer,
};
use c2wall_proto::v1::{
    self as pb, agent_sync_client::AgentSyncClient, publisher_client::PublisherClient,
    publisher_server::PublisherServer, sync_message::Kind,
};
use hyper_util::rt::TokioIo;
use tonic::{
    transport::{Channel, Endpoint, Server},
    Request, Streaming,
};

pub struct Rig {
    pub coord: Arc<Coordinator>,
    channel: Channel,
    path: Option<std::path::PathBuf>,
}

pub fn store_path(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("c2wall-coord-{tag}-{}-{n}.db", std::process::id()))
}

pub async fn rig_with(
    path: std::path::PathBuf,
    tune: impl FnOnce(&mut Service),
    live: usize,
) -> Rig {
    build(path, tune, live, None).await
}

/// A rig whose server checks bearer tokens on every call.
pub async fn rig_with_tokens(tag: &str, tokens: c2wall_coordinator::auth::Tokens) -> Rig {
    build(store_path(tag), |_| {}, 1024, Some(tokens)).await
}

async fn build(
    path: std::path::PathBuf,
    tune: impl FnOnce(&mut Service),
    live: usize,
    auth: Option<c2wall_coordinator::auth::Tokens>,
) -> Rig {
    let store = SqliteStore::open(&path).unwrap();
    let coord = Coordinator::open(Box::new(store), live).unwrap();
    let mut rig = serve(coord, tune, auth).await;
    rig.path = Some(path);
    rig
}

/// Serves `coord` in-process (any store).
pub async fn rig_on(coord: Arc<Coordinator>) -> Rig {
    serve(coord, |_| {}, None).await
}

async fn serve(
    coord: Arc<Coordinator>,
    tune: impl FnOnce(&mut Service),
    auth: Option<c2wall_coordinator::auth::Tokens>,
) -> Rig {
    // The change breaker is tested on its own (tests/guards.rs); here it would
    // hold the large batches other tests publish.
    coord.set_guard_config(c2wall_coordinator::guards::GuardConfig {
        breaker_entries: usize::MAX,
        ..Default::default()
    });
    let mut svc = Service::new(coord.clone());
    svc.heartbeat = Duration::from_millis(200);
    tune(&mut svc);
    let (client, server) = tokio::io::duplex(1 << 20);
    tokio::spawn(
        Server::builder()
            .layer(c2wall_coordinator::auth::AuthLayer(auth))
            .add_service(PublisherServer::new(svc.clone()))
            .add_service(AgentSyncServer::new(svc))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server))),
    );
    let mut client = Some(client);
    // A small per-stream window (and a large connection window) so that one
    // client that stops reading exerts backpressure on its own stream only.
    let channel = Endpoint::try_from("http://in-process")
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(16 << 20)
        .connect_with_connector(tower::service_fn(move |_| {
            let c = client.take();
            async move {
                c.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .unwrap();
    Rig {
        coord,
        channel,
        path: None,
    }
}

pub async fn rig(tag: &str) -> Rig {
    rig_with(store_path(tag), |_| {}, 1024).await
}

impl Drop for Rig {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            if let Some(p) = &self.path {
                let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
            }
        }
    }
}

/// A feed-a record of `key`, confidence 90.
fn record(key: pb::EntryKey) -> pb::Entry {
    pb::Entry {
        key: Some(key),
        source: "feed-a".into(),
        confidence: 90,
        ..Default::default()
    }
}

pub fn entry(prefix: &str) -> pb::Entry {
    record(key(prefix))
}

pub fn key(prefix: &str) -> pb::EntryKey {
    pb::EntryKey {
        prefix: prefix.into(),
        ..Default::default()
    }
}

/// A domain entry (`evil.example`, `*.evil.example`) from feed-a.
pub fn domain(name: &str) -> pb::Entry {
    record(domain_key(name))
}

pub fn domain_key(name: &str) -> pb::EntryKey {
    pb::EntryKey {
        domain: name.into(),
        ..Default::default()
    }
}

impl Rig {
    pub fn publisher(&self) -> PublisherClient<Channel> {
        PublisherClient::new(self.channel.clone())
    }
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
    pub async fn publish(
        &self,
        up: &[&str],
        wd: &[&str],
    ) -> Result<pb::PublishResponse, tonic::Status> {
        let mut req = Request::new(pb::PublishRequest {
            expedite: false,
            upserts: up.iter().map(|p| entry(p)).collect(),
            withdrawals: wd
                .iter()
                .map(|p| pb::Withdrawal {
                    key: Some(key(p)),
                    source: String::new(),
                })
                .collect(),
            reason: "test".into(),
        });
        req.metadata_mut()
            .insert(ACTOR_HEADER, "analyst".parse().unwrap());
        self.publisher().publish(req).await.map(|r| r.into_inner())
    }
    pub async fn subscribe(
        &self,
        version: u64,
        digest: Vec<u8>,
        snapshot: bool,
    ) -> Streaming<pb::SyncMessage> {
        AgentSyncClient::new(self.channel.clone())
            .subscribe(pb::SubscribeRequest {
                labels: Default::default(),
                agent_id: "edge-1".into(),
                version,
                digest,
                snapshot,
                lineage: Vec::new(),
                entries_only: false,
            })
            .await
            .unwrap()
            .into_inner()
    }
}

/// Next non-heartbeat message.
pub async fn next(s: &mut Streaming<pb::SyncMessage>) -> Kind {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), s.message())
            .await
            .expect("message within 5 s")
            .expect("stream ok")
            .expect("stream open");
        match m.kind.unwrap() {
            Kind::Heartbeat(_) | Kind::Control(_) => continue,
            k => return k,
        }
    }
}

pub fn prefixes(es: &[pb::Entry]) -> Vec<String> {
    let mut v: Vec<String> = es
        .iter()
        .map(|e| e.key.as_ref().unwrap().prefix.clone())
        .collect();
    v.sort();
    v
}
