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
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    body::Body,
    codec::{Codec, EncodeBuf, Encoder},
    codegen::{http, BoxFuture, StdError},
    server::{Grpc, NamedService, ServerStreamingService, UnaryService},
    Request, Response, Status,
};
use tonic_prost::{ProstCodec, ProstDecoder};

use super::fanout::Fanout;
use super::{reports, stream};
use crate::service::Service;

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
    fanout: Arc<Fanout>,
}

impl AgentSyncServer {
    /// Serves `svc`'s coordinator, with a fan-out of its versions made from now on.
    pub fn new(svc: Service) -> Self {
        let fanout = Fanout::attach(&svc.coord);
        AgentSyncServer {
            svc: Arc::new(svc),
            fanout,
        }
    }
}

impl NamedService for AgentSyncServer {
    const NAME: &'static str = "c2wall.v1.AgentSync";
}

struct SubscribeSvc(Arc<Service>, Arc<Fanout>);

impl ServerStreamingService<pb::SubscribeRequest> for SubscribeSvc {
    type Response = Bytes;
    type ResponseStream = ReceiverStream<Result<Bytes, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;
    fn call(&mut self, req: Request<pb::SubscribeRequest>) -> Self::Future {
        let (svc, fanout) = (self.0.clone(), self.1.clone());
        Box::pin(async move { stream::subscribe(&svc, fanout, req).await })
    }
}

struct ReportSvc(Arc<Service>);

impl UnaryService<pb::AgentStatus> for ReportSvc {
    type Response = pb::ReportStatusResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, req: Request<pb::AgentStatus>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { reports::report_status(&svc, req).await })
    }
}

struct SightingsSvc(Arc<Service>);

impl UnaryService<pb::SightingsReport> for SightingsSvc {
    type Response = pb::ReportSightingsResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, req: Request<pb::SightingsReport>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { reports::report_sightings(&svc, req).await })
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
        let (svc, fanout) = (self.svc.clone(), self.fanout.clone());
        match req.uri().path() {
            "/c2wall.v1.AgentSync/Subscribe" => Box::pin(async move {
                Ok(Grpc::new(SubscribeCodec)
                    .server_streaming(SubscribeSvc(svc, fanout), req)
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
