//! Helpers for the upstream tests: a temp dir, a signing coordinator on
//! SQLite, serving it on a loopback port, and a TCP relay the test cuts.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use c2wall_coordinator::upstream::{Board, UpstreamConfig};
use c2wall_coordinator::{
    core::Coordinator, guards::GuardConfig, service::Service, store::sqlite::SqliteStore,
    sync::AgentSyncServer,
};
use c2wall_model::{sign::Signer32, Record};
use c2wall_proto::v1::{
    self as pb, publisher_client::PublisherClient, publisher_server::PublisherServer,
};
use tokio::sync::oneshot;
use tonic::transport::Server;

/// A temp dir removed on drop.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        let d = super::store_path(tag).with_extension("d");
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A coordinator on SQLite in `dir`, signing with `seed`.
pub fn coordinator(dir: &Dir, name: &str, seed: &[u8; 32], breaker: usize) -> Arc<Coordinator> {
    let store = SqliteStore::open(&dir.0.join(format!("{name}.db"))).unwrap();
    let c = Coordinator::open(Box::new(store), 1024).unwrap();
    c.set_signer(Some(Signer32::from_seed(seed).unwrap()));
    c.set_guard_config(GuardConfig {
        breaker_entries: breaker,
        ..Default::default()
    });
    c
}

/// Serves `coord` on `port` (0: any) until the sender is dropped or fired.
pub async fn serve(coord: Arc<Coordinator>, port: u16) -> (u16, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel::<()>();
    let mut svc = Service::new(coord);
    svc.heartbeat = Duration::from_millis(200);
    tokio::spawn(
        Server::builder()
            .add_service(PublisherServer::new(svc.clone()))
            .add_service(AgentSyncServer::new(svc))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            ),
    );
    (port, tx)
}

/// A TCP relay in front of the centre: the ISP follows the relay, and the
/// test cuts every connection through it (a centre gone, hard) or points it
/// at another backend (an impostor on the centre's address).
pub struct Relay {
    pub port: u16,
    backend: Arc<std::sync::atomic::AtomicU16>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn new(backend: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let b = Arc::new(std::sync::atomic::AtomicU16::new(backend));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (b2, c2) = (b.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = b2.load(Relaxed);
                let t = tokio::spawn(async move {
                    if to == 0 {
                        return;
                    }
                    if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c2.lock().unwrap().push(t);
            }
        });
        Relay {
            port,
            backend: b,
            conns,
            accept,
        }
    }

    /// Cuts every connection; new ones go to `backend` (0: refused).
    pub fn switch(&self, backend: u16) {
        self.backend.store(backend, Relaxed);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.switch(0);
        self.accept.abort();
    }
}

pub fn upstream(port: u16, trust: &str, dir: &Dir, extra: &str) -> UpstreamConfig {
    toml::from_str(&format!(
        "name = \"centre\"\nurl = \"http://127.0.0.1:{port}\"\ninsecure = true\n\
         trust_keys = [\"{trust}\"]\nid = \"isp-a\"\nstate_dir = \"{}\"\n{extra}",
        dir.0.display()
    ))
    .unwrap()
}

/// `coord` follows the centre at `port` (`extra`: more `[[upstream]]` keys).
pub fn follow(
    coord: &std::sync::Arc<Coordinator>,
    port: u16,
    trust: &str,
    dir: &Dir,
    extra: &str,
) -> std::sync::Arc<Board> {
    let u = upstream(port, trust, dir, extra).check().unwrap();
    Board::start(coord.clone(), vec![u], &dir.0).unwrap()
}

pub async fn publisher(port: u16) -> PublisherClient<tonic::transport::Channel> {
    PublisherClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

pub fn entry(prefix: &str, category: &str) -> pb::Entry {
    pb::Entry {
        category: category.into(),
        reference: format!("ticket for {prefix}"),
        ..super::entry(prefix)
    }
}

pub async fn publish(p: &mut PublisherClient<tonic::transport::Channel>, prefixes: &[&str]) -> u64 {
    p.publish(pb::PublishRequest {
        upserts: prefixes.iter().map(|x| entry(x, "mirai")).collect(),
        reason: "test".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .version
}

/// The ISP's records of the upstream's source.
pub fn upstream_records(isp: &Coordinator) -> Vec<Record> {
    isp.source_records("upstream:centre")
}

/// Waits until `f` holds (or panics after 10 s, saying what).
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn listed(isp: &Coordinator, prefix: &str) -> bool {
    upstream_records(isp)
        .iter()
        .any(|r| r.entry.target.to_string() == prefix)
}

pub fn keys() -> ([u8; 32], String) {
    let (seed, s) = Signer32::generate();
    (seed, s.public_hex())
}
