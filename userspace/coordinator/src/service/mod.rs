//! gRPC services over [`Coordinator`].

use std::{sync::Arc, time::Duration};

use c2wall_model::{
    limits,
    wire::{identity_from_wire, records_from_wire, WireError},
    Prefix,
};
use c2wall_proto::v1::{self as pb, publisher_server::Publisher};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::core::{Coordinator, Published, Withdrawal};

mod checks;
mod explain;
mod protect;
mod publish;
mod rollout;

pub(crate) use checks::actor;
use checks::{
    check_reason, check_sources, cut_text, decode_status, origin, page_by_bytes, page_limit,
};

use publish::{page_token, parse_page_token};

pub use checks::{decode_errors_are_invalid, ACTOR_HEADER, ROLE_HEADER};

#[derive(Clone)]
pub struct Service {
    pub coord: Arc<Coordinator>,
    pub heartbeat: Duration,
    /// Messages queued per stream before sending waits.
    pub stream_buffer: usize,
    /// A subscriber that cannot take a message for this long is dropped.
    pub send_timeout: Duration,
    /// The configured feeds' state (none configured: empty).
    pub feeds: Option<Arc<crate::feeds::Board>>,
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Publishers limited to some sources, by identity name.
    pub publishers: Arc<std::collections::HashMap<String, Vec<String>>>,
    pub limits: crate::limits::Limits,
    /// Stage ceilings for streams; releases for expedited publishes and
    /// rollbacks.
    pub rollout: Arc<crate::rollout::Rollout>,
    /// The upstream coordinators followed (none: empty).
    pub upstreams: Arc<crate::upstream::Board>,
}

impl Service {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Service {
            coord,
            heartbeat: Duration::from_secs(5),
            stream_buffer: 64,
            send_timeout: Duration::from_secs(10),
            feeds: None,
            metrics: None,
            publishers: Arc::default(),
            limits: Default::default(),
            rollout: crate::rollout::Rollout::disabled(),
            upstreams: Arc::default(),
        }
    }
}

impl Service {
    /// Counts a publish-like call by outcome.
    fn counted<T>(&self, r: Result<T, Status>) -> Result<T, Status> {
        if let Some(m) = &self.metrics {
            let result = if r.is_ok() { "ok" } else { "rejected" };
            m.publishes.with_label_values(&[result]).inc();
        }
        r
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::CoordError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::from)
}

fn version_info(v: crate::store::VersionInfo) -> pb::VersionInfo {
    pb::VersionInfo {
        version: v.version,
        digest: v.digest,
        created_at: v.created_at,
        actor: v.actor,
        reason: v.reason,
        upserts: v.upserts,
        removals: v.removals,
    }
}

#[tonic::async_trait]
impl Publisher for Service {
    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = req.into_inner();
        let within = if r.within.is_empty() {
            None
        } else {
            Some(
                r.within
                    .parse::<Prefix>()
                    .map_err(|e| Status::invalid_argument(format!("within: {e}")))?,
            )
        };
        let size = page_limit(r.page_size, 1000) as usize;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(parse_page_token(&r.page_token).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "page_token: `{}` is not a token from a previous page",
                    limits::quote(&r.page_token, 64)
                ))
            })?)
        };
        let (records, more, version) = self.coord.list(within, &r.source, after, size);
        let next_page_token = match records.last() {
            Some(last) if more => page_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListResponse {
            entries: records.iter().map(pb::Entry::from).collect(),
            next_page_token,
            version,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let key = req.into_inner().key.unwrap_or_default();
        let ident = identity_from_wire(&key)
            .map_err(|e| Status::invalid_argument(format!("key.{}: {}", e.field, e.reason)))?;
        let (records, effective, version) = self.coord.get(&ident);
        if records.is_empty() {
            return Err(Status::not_found(format!("`{ident}` is not listed")));
        }
        let coord = self.coord.clone();
        let sampled_would_drops = blocking(move || coord.sampled_would_drops(&ident)).await?;
        Ok(Response::new(pb::GetResponse {
            sampled_would_drops,
            records: records.iter().map(pb::Entry::from).collect(),
            effective: effective.as_ref().map(pb::Entry::from),
            version,
        }))
    }

    async fn feeds(
        &self,
        _req: Request<pb::FeedsRequest>,
    ) -> Result<Response<pb::FeedsResponse>, Status> {
        let mut feeds = self
            .feeds
            .as_ref()
            .map(|b| b.states.lock().expect("lock").clone())
            .unwrap_or_default();
        feeds.extend(self.upstreams.feed_states());
        Ok(Response::new(pb::FeedsResponse { feeds }))
    }

    async fn sightings(
        &self,
        req: Request<pb::SightingsRequest>,
    ) -> Result<Response<pb::SightingsResponse>, Status> {
        let r = req.into_inner();
        let within = match r.within.trim() {
            "" => None,
            w => Some(
                w.parse::<Prefix>()
                    .map_err(|e| Status::invalid_argument(format!("within: {e}")))?,
            ),
        };
        let family = match r.family.as_str() {
            "" => None,
            "ipv4" => Some(c2wall_model::Family::V4),
            "ipv6" => Some(c2wall_model::Family::V6),
            f => {
                return Err(Status::invalid_argument(format!(
                    "family: `{f}` (ipv4 or ipv6)"
                )))
            }
        };
        let limit = page_limit(r.limit, 1000) as usize;
        let coord = self.coord.clone();
        let rows = blocking(move || coord.sightings(within, family, r.since, limit)).await?;
        Ok(Response::new(pb::SightingsResponse {
            sightings: rows
                .into_iter()
                .map(|(agent_id, s)| pb::AgentSighting {
                    agent_id,
                    sighting: Some(s),
                })
                .collect(),
        }))
    }

    async fn protected(
        &self,
        _req: Request<pb::ProtectedRequest>,
    ) -> Result<Response<pb::ProtectedResponse>, Status> {
        Ok(Response::new(protect::protected_response(&self.coord)))
    }

    async fn protect(
        &self,
        req: Request<pb::ProtectRequest>,
    ) -> Result<Response<pb::ProtectedResponse>, Status> {
        protect::protect(self, req).await
    }

    async fn pending(
        &self,
        _req: Request<pb::PendingRequest>,
    ) -> Result<Response<pb::PendingResponse>, Status> {
        let coord = self.coord.clone();
        let held = blocking(move || coord.pending(None)).await?;
        Ok(Response::new(pb::PendingResponse {
            changes: held
                .into_iter()
                .map(|h| pb::PendingChange {
                    id: h.id,
                    created_at: h.created_at,
                    actor: h.actor,
                    reason: h.reason,
                    kind: h.kind.to_string(),
                    summary: h.summary,
                })
                .collect(),
        }))
    }

    async fn resolve_pending(
        &self,
        req: Request<pb::ResolvePendingRequest>,
    ) -> Result<Response<pb::ResolvePendingResponse>, Status> {
        let origin = origin(&req);
        let r = req.into_inner();
        check_reason("reason", &r.reason)?;
        let coord = self.coord.clone();
        let done =
            blocking(move || coord.resolve_pending(r.id, r.confirm, &origin, &r.reason)).await?;
        let version = match done {
            Some(crate::admin::Confirmed::Published(Published::Version(v))) => v.version,
            Some(crate::admin::Confirmed::Imported(o)) => o.version.map_or(0, |v| v.version),
            _ => 0,
        };
        Ok(Response::new(pb::ResolvePendingResponse { version }))
    }

    async fn audit(
        &self,
        req: Request<pb::AuditRequest>,
    ) -> Result<Response<pb::AuditResponse>, Status> {
        let r = req.into_inner();
        let limit = page_limit(r.limit, 100);
        let coord = self.coord.clone();
        let events = blocking(move || coord.audit_log(r.before, limit)).await?;
        let events = events
            .into_iter()
            .map(|e| pb::AuditEvent {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                peer: e.peer,
                action: e.action,
                detail: e.detail,
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(pb::AuditResponse {
            events: page_by_bytes(events, |e| {
                cut_text(&mut e.reason);
                cut_text(&mut e.detail);
            }),
        }))
    }

    async fn set_mode(
        &self,
        req: Request<pb::SetModeRequest>,
    ) -> Result<Response<pb::SetModeResponse>, Status> {
        let origin = origin(&req);
        let r = req.into_inner();
        check_reason("reason", &r.reason)?;
        limits::text("agent_id", &r.agent_id, limits::NAME_BYTES)?;
        limits::text("mode", &r.mode, limits::NAME_BYTES)?;
        let mode = c2wall_model::Mode::from_wire("mode", r.mode.trim())?;
        let scope = c2wall_model::Scope::from_agent_id(r.agent_id.trim());
        let coord = self.coord.clone();
        let m = blocking(move || coord.set_mode(mode, &scope, &origin, &r.reason)).await?;
        Ok(Response::new(pb::SetModeResponse {
            fleet: c2wall_model::Mode::to_wire(m.fleet).to_string(),
            agents: m
                .agents
                .into_iter()
                .map(|(a, m)| (a, m.to_string()))
                .collect(),
        }))
    }

    async fn object(
        &self,
        req: Request<pb::ObjectRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let origin = origin(&req);
        let r = req.into_inner();
        check_reason("reason", &r.reason)?;
        limits::text("source", &r.source, limits::SOURCE_BYTES)?;
        let ident = identity_from_wire(&r.key.unwrap_or_default())
            .map_err(|e| Status::invalid_argument(format!("key.{}: {}", e.field, e.reason)))?;
        let coord = self.coord.clone();
        let source = (!r.source.is_empty()).then_some(r.source);
        let v =
            blocking(move || coord.object(&ident, source.as_deref(), &origin, &r.reason)).await?;
        Ok(Response::new(pb::PublishResponse {
            version: v.version,
            digest: v.digest,
            upserted: v.upserts,
            withdrawn: v.removals,
            ..Default::default()
        }))
    }

    async fn explain(
        &self,
        req: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        explain::explain(self, req)
    }

    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let r = req.into_inner();
        let coord = self.coord.clone();
        let limit = page_limit(r.limit, 50);
        let versions = blocking(move || coord.history(r.before, limit)).await?;
        Ok(Response::new(pb::HistoryResponse {
            versions: page_by_bytes(versions.into_iter().map(version_info).collect(), |v| {
                cut_text(&mut v.reason)
            }),
        }))
    }

    async fn agents(
        &self,
        _req: Request<pb::AgentsRequest>,
    ) -> Result<Response<pb::AgentsResponse>, Status> {
        let coord = self.coord.clone();
        let agents = blocking(move || coord.agents()).await?;
        Ok(Response::new(pb::AgentsResponse {
            agents,
            latest_version: self.coord.latest_version(),
            lineage: c2wall_model::sign::hex(&self.coord.lineage().0),
        }))
    }

    async fn lineage(
        &self,
        req: Request<pb::LineageRequest>,
    ) -> Result<Response<pb::LineageResponse>, Status> {
        let origin = origin(&req);
        let r = req.into_inner();
        if !r.from_lineage.trim().is_empty() {
            check_reason("reason", &r.reason)?;
            if r.reason.trim().is_empty() {
                return Err(Status::invalid_argument(
                    "reason: a lineage move needs one (it is audited)",
                ));
            }
            let from = crate::integrity::parse_lineage(&r.from_lineage)?;
            let coord = self.coord.clone();
            blocking(move || coord.move_lineage(from, r.from_version, &origin, &r.reason)).await?;
        }
        let (lineage, moved) = self.coord.lineage();
        Ok(Response::new(pb::LineageResponse {
            lineage: c2wall_model::sign::hex(&lineage),
            moved,
        }))
    }

    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let r = self.do_publish(req).await;
        self.counted(r)
    }

    async fn import(
        &self,
        req: Request<tonic::Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let r = self.do_import(req).await;
        self.counted(r)
    }

    async fn rollback(
        &self,
        req: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let r = self.do_rollback(req).await;
        self.counted(r)
    }

    async fn rollout_status(
        &self,
        req: Request<pb::RolloutStatusRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        self.do_rollout_status(req).await
    }

    async fn rollout_resume(
        &self,
        req: Request<pb::RolloutResumeRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        self.do_rollout_resume(req).await
    }
}
