//! Answers secondaries: SOA over UDP or TCP, AXFR and IXFR over TCP (IXFR
//! over UDP only says whether there is something new). Only TSIG-signed
//! requests with the configured key, or requests from `allow_transfer`
//! addresses, get an answer; a bad signature gets NOTAUTH, anything else
//! REFUSED.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::config::Rpz;
use super::messages::{self, serial};
use super::metrics::RpzMetrics;
use super::tsig::{self, ResponseSigner, Signed};
use super::zone::Zone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Idle time a TCP client may take between messages.
const TCP_IDLE: Duration = Duration::from_secs(30);
/// TCP connections served at once.
const TCP_CLIENTS: usize = 64;

pub struct Server {
    pub cfg: Arc<Rpz>,
    pub zone: Arc<RwLock<Zone>>,
    pub metrics: Arc<RpzMetrics>,
}

fn now() -> u64 {
    crate::core::now().max(0) as u64
}

impl Server {
    /// The messages answering one request (none: not a request to answer).
    pub fn answer(&self, bytes: &[u8], peer: IpAddr, transport: Transport) -> Vec<Vec<u8>> {
        if bytes.len() < 12 {
            return Vec::new();
        }
        let id = u16::from_be_bytes([bytes[0], bytes[1]]);
        let Ok(req) = Message::from_vec(bytes) else {
            return vec![messages::error(
                id,
                OpCode::Query,
                None,
                ResponseCode::FormErr,
            )];
        };
        if req.message_type != MessageType::Query {
            return Vec::new();
        }
        let query = req.queries.first();
        if req.op_code != OpCode::Query {
            return vec![messages::error(
                id,
                req.op_code,
                query,
                ResponseCode::NotImp,
            )];
        }
        let Some(query) = query.filter(|_| req.queries.len() == 1) else {
            return vec![messages::error(
                id,
                req.op_code,
                None,
                ResponseCode::FormErr,
            )];
        };
        let kind = match query.query_type() {
            RecordType::SOA => "soa",
            RecordType::AXFR => "axfr",
            RecordType::IXFR => "ixfr",
            _ => "other",
        };
        let refuse = |rcode: ResponseCode, result: &str| {
            self.metrics
                .requests
                .with_label_values(&[kind, result])
                .inc();
            vec![messages::error(id, req.op_code, Some(query), rcode)]
        };
        if query.name().to_lowercase() != messages::apex(&self.cfg) {
            return refuse(ResponseCode::Refused, "not_this_zone");
        }
        let signed = tsig::verify_request(bytes, self.cfg.key.as_ref(), now());
        let mac = match signed {
            Signed::Bad(e) => {
                tracing::warn!(%peer, why = e.name(), "RPZ request with a bad TSIG refused");
                return refuse(ResponseCode::NotAuth, e.name());
            }
            Signed::Yes { mac } => Some(mac),
            Signed::No
                if self
                    .cfg
                    .allow_transfer
                    .iter()
                    .any(|p| p.contains_addr(peer)) =>
            {
                None
            }
            Signed::No => {
                tracing::warn!(%peer, kind, "unsigned RPZ request from an address not in allow_transfer");
                return refuse(ResponseCode::Refused, "refused");
            }
        };
        let out = match (query.query_type(), transport) {
            (RecordType::SOA, _) => {
                let z = self.zone.read().expect("lock");
                vec![messages::single(
                    id,
                    query,
                    vec![messages::soa(&self.cfg, z.version)],
                    false,
                )]
            }
            (RecordType::AXFR, Transport::Tcp) => self.full(id, query),
            (RecordType::IXFR, _) => {
                let Some(client) = req.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(s) => Some(s.serial),
                    _ => None,
                }) else {
                    return refuse(ResponseCode::FormErr, "no_serial");
                };
                self.incremental(id, query, client, transport)
            }
            (RecordType::AXFR, Transport::Udp) => return refuse(ResponseCode::FormErr, "axfr_udp"),
            _ => return refuse(ResponseCode::Refused, "unsupported"),
        };
        self.metrics.requests.with_label_values(&[kind, "ok"]).inc();
        let mut out = out;
        if let (Some(mac), Some(key)) = (mac, self.cfg.key.as_ref()) {
            let mut signer = ResponseSigner::new(key, mac, now());
            for m in &mut out {
                signer.sign(m);
            }
        }
        let bytes: usize = out.iter().map(Vec::len).sum();
        self.metrics
            .bytes
            .with_label_values(&[kind])
            .inc_by(bytes as u64);
        out
    }

    fn full(&self, id: u16, query: &Query) -> Vec<Vec<u8>> {
        let records = {
            let z = self.zone.read().expect("lock");
            messages::full_zone(&self.cfg, z.version, &z.records(&self.cfg))
        };
        messages::transfer(id, query, records)
    }

    fn incremental(&self, id: u16, query: &Query, client: u32, t: Transport) -> Vec<Vec<u8>> {
        let z = self.zone.read().expect("lock");
        let current = messages::soa(&self.cfg, z.version);
        if client == serial(z.version) {
            return vec![messages::single(id, query, vec![current], false)];
        }
        if t == Transport::Udp {
            // RFC 1995 2: a UDP answer that cannot hold the change is the
            // current SOA alone; the client then asks over TCP.
            return vec![messages::single(id, query, vec![current], false)];
        }
        let from = z.journal_from(client);
        match from.and_then(|v| z.since(v).map(|d| (v, d))) {
            Some((from, (deleted, added))) => {
                let records = messages::incremental(&self.cfg, from, z.version, &deleted, &added);
                drop(z);
                self.metrics
                    .requests
                    .with_label_values(&["ixfr", "incremental"])
                    .inc();
                messages::transfer(id, query, records)
            }
            None => {
                drop(z);
                self.metrics
                    .requests
                    .with_label_values(&["ixfr", "whole_zone"])
                    .inc();
                self.full(id, query)
            }
        }
    }

    pub async fn serve_udp(self: Arc<Self>, socket: UdpSocket) {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let me = self.clone();
            let req = buf[..n].to_vec();
            let answers =
                tokio::task::spawn_blocking(move || me.answer(&req, peer.ip(), Transport::Udp))
                    .await
                    .unwrap_or_default();
            if let Some(a) = answers.first() {
                let _ = socket.send_to(a, peer).await;
            }
        }
    }

    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(TCP_CLIENTS));
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many RPZ transfer connections; closing one");
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = me.client(stream, peer).await {
                    tracing::debug!(%peer, error = %e, "RPZ connection ended");
                }
            });
        }
    }

    async fn client(self: Arc<Self>, mut s: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE, s.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
            tokio::time::timeout(TCP_IDLE, s.read_exact(&mut req))
                .await
                .map_err(|_| std::io::Error::other("idle"))??;
            let me = self.clone();
            let answers =
                tokio::task::spawn_blocking(move || me.answer(&req, peer.ip(), Transport::Tcp))
                    .await
                    .unwrap_or_default();
            for a in answers {
                let mut framed = Vec::with_capacity(a.len() + 2);
                framed.extend((a.len() as u16).to_be_bytes());
                framed.extend(a);
                s.write_all(&framed).await?;
            }
            s.flush().await?;
        }
    }
}
