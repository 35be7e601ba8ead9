//! The AgentSync server, written by hand so that its Subscribe stream carries
//! pre-encoded `SyncMessage` frames: a delta is encoded once, at commit, and
//! every stream shares the same bytes (a refcount, not a copy). With generated
//! code each stream would clone and encode every delta, and fan-out memory would
//! grow with streams x delta size (1,000 agents x a 50,000-entry delta is 70 GB).
//!
//! Same service name and method paths as c2wall.v1.AgentSync, so the generated
//! client is unchanged.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes};
use c2wall_proto::v1 as pb;
use prost::encoding::{encode_key, encode_varint, WireType};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    body::Body,
    codec::{Codec, EncodeBuf, Encoder},
    codegen::{http, BoxFuture, StdError},
    server::{Grpc, NamedService, ServerStreamingService, UnaryService},
    Request, Response, Status,
};
use tonic_prost::{ProstCodec, ProstDecoder};

use prost::Message;

use crate::core::Inner;
use crate::service::Service;
use crate::state::State;

/// Field numbers of `SyncMessage.kind`.
pub const SNAPSHOT: u32 = 1;
pub const DELTA: u32 = 2;

/// Frames an encoded message as a `SyncMessage` with it in field `field`:
/// byte-identical to encoding the SyncMessage itself.
pub fn frame(field: u32, encoded: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(encoded.len() + 6);
    encode_key(field, WireType::LengthDelimited, &mut b);
    encode_varint(encoded.len() as u64, &mut b);
    b.extend_from_slice(encoded);
    Bytes::from(b)
}

/// Writes frames as they are.
pub struct PassThrough;

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct SubscribeCodec;

impl Codec for SubscribeCodec {
    type Encode = Bytes;
    type Decode = pb::SubscribeRequest;
    type Encoder = PassThrough;
    type Decoder = ProstDecoder<pb::SubscribeRequest>;
    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }
    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<pb::SubscribeRequest, pb::SubscribeRequest>::default().decoder()
    }
}

#[derive(Clone)]
pub struct AgentSyncServer {
    svc: Arc<Service>,
}

impl AgentSyncServer {
    pub fn new(svc: Service) -> Self {
        AgentSyncServer { svc: Arc::new(svc) }
    }
}

impl NamedService for AgentSyncServer {
    const NAME: &'static str = "c2wall.v1.AgentSync";
}

struct SubscribeSvc(Arc<Service>);

impl ServerStreamingService<pb::SubscribeRequest> for SubscribeSvc {
    type Response = Bytes;
    type ResponseStream = ReceiverStream<Result<Bytes, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;
    fn call(&mut self, req: Request<pb::SubscribeRequest>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { svc.subscribe(req).await })
    }
}

struct ReportSvc(Arc<Service>);

impl UnaryService<pb::AgentStatus> for ReportSvc {
    type Response = pb::ReportStatusResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, req: Request<pb::AgentStatus>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { svc.report_status(req).await })
    }
}

struct SightingsSvc(Arc<Service>);

impl UnaryService<pb::SightingsReport> for SightingsSvc {
    type Response = pb::ReportSightingsResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, req: Request<pb::SightingsReport>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { svc.report_sightings(req).await })
    }
}

impl<B> tower_service::Service<http::Request<B>> for AgentSyncServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let svc = self.svc.clone();
        match req.uri().path() {
            "/c2wall.v1.AgentSync/Subscribe" => Box::pin(async move {
                Ok(Grpc::new(SubscribeCodec)
                    .server_streaming(SubscribeSvc(svc), req)
                    .await)
            }),
            "/c2wall.v1.AgentSync/ReportStatus" => Box::pin(async move {
                let codec = ProstCodec::<pb::ReportStatusResponse, pb::AgentStatus>::default();
                Ok(Grpc::new(codec).unary(ReportSvc(svc), req).await)
            }),
            "/c2wall.v1.AgentSync/ReportSightings" => Box::pin(async move {
                let codec =
                    ProstCodec::<pb::ReportSightingsResponse, pb::SightingsReport>::default();
                Ok(Grpc::new(codec).unary(SightingsSvc(svc), req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(Body::default());
                let h = response.headers_mut();
                h.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                h.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            }),
        }
    }
}

/// Every frame a subscriber receives stays under this many encoded bytes: a
/// quarter of the 4 MiB gRPC receive limit agents keep, so that no list
/// content (entries carry up to ~2.5 KB of provenance each) can make a frame
/// an agent cannot take.
pub const FRAME_BYTES: usize = 1 << 20;

/// Splits `items` into runs whose encoded size (as repeated fields) stays
/// under `budget` bytes; each run holds at least one item.
pub fn runs_by_bytes<T: Message>(items: &[T], budget: usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = item.encoded_len();
        // Key, length varint and the item itself.
        let size = n + 1 + prost::length_delimiter_len(n);
        if i > start && bytes + size > budget {
            runs.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The framed messages of one encoded delta: itself, or parts of at most
/// [`FRAME_BYTES`] each (see `Delta.more`).
pub fn delta_frames(encoded: &[u8]) -> Vec<Bytes> {
    if encoded.len() <= FRAME_BYTES {
        return vec![frame(DELTA, encoded)];
    }
    let d = pb::Delta::decode(encoded).expect("encoded by us");
    // Room for the versions, digest and signature of every part.
    let budget = FRAME_BYTES - 512;
    let parts: Vec<pb::Delta> = runs_by_bytes(&d.removals, budget)
        .into_iter()
        .map(|r| (Vec::new(), r.to_vec()))
        .chain(
            runs_by_bytes(&d.upserts, budget)
                .into_iter()
                .map(|u| (u.to_vec(), Vec::new())),
        )
        .map(|(upserts, removals)| pb::Delta {
            previous_version: d.previous_version,
            version: d.version,
            digest: d.digest.clone(),
            upserts,
            removals,
            more: true,
            signature: d.signature.clone(),
            lineage: d.lineage.clone(),
        })
        .collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.more = i + 1 < n;
            frame(DELTA, &p.encode_to_vec())
        })
        .collect()
}

/// The snapshot of the current set, in chunks of at most [`FRAME_BYTES`];
/// the last carries the signature and the lineage move in force, signed with
/// the signer in use.
pub(crate) fn snapshot_chunks(inner: &Inner, state: &State) -> Vec<Bytes> {
    let (signer, lineage) = (inner.signer.as_ref(), &inner.lineage);
    let digest = state.digest.to_bytes();
    let signature = signer
        .map(|s| s.sign(lineage, state.version, &digest))
        .unwrap_or_default();
    let moved = inner.moved.clone().map(|mut m| {
        m.signature = signer
            .map(|s| s.sign_move(&m.from_lineage, m.from_version, &m.to_lineage))
            .unwrap_or_default();
        m
    });
    let entries: Vec<pb::Entry> = state.effective.values().map(pb::Entry::from).collect();
    let mut runs = runs_by_bytes(&entries, FRAME_BYTES - 512);
    if runs.is_empty() {
        runs.push(&[]);
    }
    let n = runs.len();
    runs.into_iter()
        .enumerate()
        .map(|(seq, run)| {
            let last = seq + 1 == n;
            let c = pb::SnapshotChunk {
                version: state.version,
                digest: digest.clone(),
                seq: seq as u32,
                last,
                entries: run.to_vec(),
                signature: if last { signature.clone() } else { Vec::new() },
                lineage: lineage.clone(),
                moved: if last { moved.clone() } else { None },
            };
            frame(SNAPSHOT, &c.encode_to_vec())
        })
        .collect()
}
