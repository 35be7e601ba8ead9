//! A man in the middle for the agent's sync stream: it subscribes upstream
//! as the agent (with a valid agent certificate) and serves the agent in
//! plaintext, relaying every message, and on demand adds one entry to the
//! deltas or the snapshots it passes on, fixing up the digest (anyone can:
//! it is a sum of entry hashes). Only the coordinator's signature, which it
//! cannot make, gives it away.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

use c2wall_model::{Record, SetDigest};
use c2wall_proto::v1::{
    self as pb,
    agent_sync_client::AgentSyncClient,
    agent_sync_server::{AgentSync, AgentSyncServer},
    sync_message::Kind,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{transport::Endpoint, Request, Response, Status};

use crate::netns::Netns;

/// What the relay does to the messages it passes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tamper {
    Nothing = 0,
    /// Adds the entry to each delta.
    Deltas = 1,
    /// Asks upstream for a snapshot on every subscription and adds the entry
    /// to it.
    Snapshots = 2,
}

#[derive(Clone)]
pub struct Relay {
    upstream: Endpoint,
    tamper: Arc<AtomicU8>,
    inject: pb::Entry,
}

impl Relay {
    /// Sets what to do; streams open under another setting end, so the
    /// agent resubscribes and meets the new behaviour at once.
    pub fn set(&self, t: Tamper) {
        self.tamper.store(t as u8, Ordering::SeqCst);
    }

    fn mode(&self) -> u8 {
        self.tamper.load(Ordering::SeqCst)
    }

    /// The injected entry added to a digest.
    fn forge(&self, digest: &[u8]) -> Vec<u8> {
        let mut d = SetDigest::from_bytes(digest).expect("a digest");
        let e = Record::try_from(&self.inject).expect("a valid entry").entry;
        d.add(&e);
        d.to_bytes()
    }
}

/// A running relay; dropping it stops the server and its streams.
pub struct RelayHandle {
    pub relay: Relay,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the relay in `ns`, listening on `listen` and relaying to
/// `upstream` (an endpoint with the agent's TLS settings); it adds `inject`
/// when told to.
pub fn start(ns: &Netns, listen: SocketAddr, upstream: Endpoint, inject: pb::Entry) -> RelayHandle {
    let relay = Relay {
        upstream,
        tamper: Arc::default(),
        inject,
    };
    let r = relay.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // One thread in the namespace, one single-threaded runtime: every socket
    // (the listener, the upstream connection) is made in the namespace, and
    // every stream task ends with the runtime.
    let thread = ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
            ready_tx.send(()).unwrap();
            tonic::transport::Server::builder()
                .add_service(AgentSyncServer::new(r))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .unwrap();
        })
    });
    ready_rx.recv().expect("relay listening");
    RelayHandle {
        relay,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

#[tonic::async_trait]
impl AgentSync for Relay {
    type SubscribeStream = ReceiverStream<Result<pb::SyncMessage, Status>>;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let mode = self.mode();
        let mut sub = req.into_inner();
        if mode == Tamper::Snapshots as u8 {
            sub.snapshot = true;
        }
        let channel = self
            .upstream
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut up = AgentSyncClient::new(channel)
            .subscribe(sub)
            .await?
            .into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let relay = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(mut m)) = up.message().await {
                if relay.mode() != mode {
                    return; // the agent resubscribes and meets the new mode
                }
                match &mut m.kind {
                    Some(Kind::Delta(d)) if mode == Tamper::Deltas as u8 && !d.more => {
                        d.upserts.push(relay.inject.clone());
                        d.digest = relay.forge(&d.digest);
                    }
                    Some(Kind::Snapshot(c)) if mode == Tamper::Snapshots as u8 => {
                        if c.last {
                            c.entries.push(relay.inject.clone());
                        }
                        c.digest = relay.forge(&c.digest);
                    }
                    _ => {}
                }
                if tx.send(Ok(m)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn report_status(
        &self,
        req: Request<pb::AgentStatus>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let channel = self
            .upstream
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        AgentSyncClient::new(channel)
            .report_status(req.into_inner())
            .await
    }

    async fn report_sightings(
        &self,
        _req: Request<pb::SightingsReport>,
    ) -> Result<Response<pb::ReportSightingsResponse>, Status> {
        Ok(Response::new(pb::ReportSightingsResponse {}))
    }
}
