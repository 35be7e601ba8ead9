//! Accepting TLS connections for the coordinator's gRPC server. tonic's own
//! acceptor drops failed handshakes silently; a caller with a certificate
//! from the wrong CA is exactly what an operator wants logged and counted,
//! so the handshake happens here and tonic gets the finished streams.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio_stream::wrappers::ReceiverStream;

/// The server's TLS settings, replaceable while serving (a renewed
/// certificate, a new CRL): new connections use the latest; established ones
/// keep the settings they were accepted with.
#[derive(Clone)]
pub struct Settings(Arc<RwLock<Arc<ServerConfig>>>);

impl Settings {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Settings(Arc::new(RwLock::new(config)))
    }
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self.0.write().expect("lock") = config;
    }
    fn current(&self) -> Arc<ServerConfig> {
        self.0.read().expect("lock").clone()
    }
}

/// Called with the peer and the reason for each refused handshake.
pub type OnRefused = Arc<dyn Fn(SocketAddr, &str) + Send + Sync>;

/// A handshake taking longer than this is abandoned.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// TLS connections accepted on `listener`, for
/// `tonic::transport::Server::serve_with_incoming_shutdown`. Stops accepting
/// once the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    settings: Settings,
    on_refused: OnRefused,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait, go on.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(settings.current());
            let (tx, on_refused) = (tx.clone(), on_refused.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    // A connection closed before a TLS hello is a port
                    // probe (health checks, readiness loops), not a refusal.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, "connection closed before the TLS handshake")
                    }
                    Ok(Err(e)) => on_refused(peer, &e.to_string()),
                    Err(_) => on_refused(peer, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
