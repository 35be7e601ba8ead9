//! Accepting TLS connections for the coordinator's gRPC server. tonic's own
//! acceptor drops failed handshakes silently; a caller with a certificate
//! from the wrong CA is exactly what an operator wants logged and counted,
//! so the handshake happens here and tonic gets the finished streams.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex, RwLock},
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

/// Why a connection was refused or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (wrong CA, revoked, expired, timed out).
    Handshake,
    /// Over the connection limit (in total, per address, or per address
    /// without a client certificate).
    Limit,
    /// No byte moved either way for the idle timeout.
    Idle,
}

impl Refusal {
    /// The `reason` label of `c2wall_rpc_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Handshake => "tls_handshake",
            Refusal::Limit => "connection_limit",
            Refusal::Idle => "idle_connection",
        }
    }
}

/// Called with the peer, the kind and the reason for each refusal.
pub type OnRefused = Arc<dyn Fn(SocketAddr, Refusal, &str) + Send + Sync>;

/// Bounds on connections: no caller can hold the descriptors others need.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub per_peer: usize,
    /// Connections from one address that presented no client certificate.
    pub unidentified_per_peer: usize,
    /// A connection that moves no byte either way for this long is closed.
    pub idle: Duration,
}

/// Open connections, in total and per address (all, unidentified).
#[derive(Default)]
struct Counts {
    total: usize,
    peers: HashMap<IpAddr, (usize, usize)>,
}

/// Releases a connection's place in the counts when it closes.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    /// Counted among the address's connections without a certificate.
    unidentified: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().expect("lock");
        c.total -= 1;
        if let Some((all, unidentified)) = c.peers.get_mut(&self.ip) {
            *all -= 1;
            if self.unidentified {
                *unidentified -= 1;
            }
            if *all == 0 {
                c.peers.remove(&self.ip);
            }
        }
    }
}

/// A served connection: counted while open, closed once idle.
pub struct Tracked {
    inner: TlsStream<TcpStream>,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    peer: SocketAddr,
    on_refused: OnRefused,
    _slot: Slot,
}

impl Tracked {
    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        // Resetting the timer on every read and write would cost a timer
        // update per frame; a second of slack is plenty.
        if next - self.deadline.deadline() > Duration::from_secs(1) {
            self.deadline.as_mut().reset(next);
        }
    }
    fn timed_out(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if self.deadline.as_mut().poll(cx).is_ready() {
            (self.on_refused)(self.peer, Refusal::Idle, "no traffic either way");
            return true;
        }
        false
    }
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = <TlsStream<TcpStream> as tonic::transport::server::Connected>::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            std::task::Poll::Ready(Ok(())) if buf.filled().len() > before => self.touch(),
            std::task::Poll::Pending if self.timed_out(cx) => {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle connection closed",
                )))
            }
            _ => {}
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.touch();
            }
        }
        r
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A handshake taking longer than this is abandoned.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// TLS connections accepted on `listener`, within `limits`, for
/// `tonic::transport::Server::serve_with_incoming_shutdown`. Stops accepting
/// once the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    settings: Settings,
    limits: Limits,
    on_refused: OnRefused,
) -> ReceiverStream<Result<Tracked, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let counts: Arc<Mutex<Counts>> = Arc::default();
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
            let ip = peer.ip();
            let mut slot = {
                let mut c = counts.lock().expect("lock");
                let per_peer = c.peers.get(&ip).map_or(0, |p| p.0);
                if c.total >= limits.max_connections || per_peer >= limits.per_peer {
                    drop(c);
                    on_refused(peer, Refusal::Limit, "too many connections");
                    continue;
                }
                c.total += 1;
                c.peers.entry(ip).or_default().0 += 1;
                Slot {
                    counts: counts.clone(),
                    ip,
                    unidentified: false,
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(settings.current());
            let (tx, on_refused) = (tx.clone(), on_refused.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let identified = tls.get_ref().1.peer_certificates().is_some();
                        if !identified {
                            let mut c = slot.counts.lock().expect("lock");
                            let p = c.peers.entry(ip).or_default();
                            if p.1 >= limits.unidentified_per_peer {
                                drop(c);
                                on_refused(
                                    peer,
                                    Refusal::Limit,
                                    "too many connections without a client certificate",
                                );
                                return;
                            }
                            p.1 += 1;
                            slot.unidentified = true;
                        }
                        let _ = tx
                            .send(Ok(Tracked {
                                inner: tls,
                                idle: limits.idle,
                                deadline: Box::pin(tokio::time::sleep(limits.idle)),
                                peer,
                                on_refused,
                                _slot: slot,
                            }))
                            .await;
                    }
                    // A connection closed before a TLS hello is a port
                    // probe (health checks, readiness loops), not a refusal.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, "connection closed before the TLS handshake")
                    }
                    Ok(Err(e)) => on_refused(peer, Refusal::Handshake, &e.to_string()),
                    Err(_) => on_refused(peer, Refusal::Handshake, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
