//! An agent's reports: its status (for `c2wall agents`) and its sightings.

use c2wall_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::service::{actor, blocking, Service, ROLE_HEADER};

/// A subscriber speaks only as itself: with an `agent` or `downstream`
/// identity (certificate or token) the agent_id it sends must be that
/// identity's name.
pub(super) fn check_agent_id<T>(req: &Request<T>, claimed: &str) -> Result<(), Status> {
    if claimed.is_empty() {
        return Err(Status::invalid_argument("agent_id: missing"));
    }
    c2wall_model::limits::text("agent_id", claimed, c2wall_model::limits::NAME_BYTES)?;
    let role = req
        .metadata()
        .get(ROLE_HEADER)
        .and_then(|v| v.to_str().ok());
    let who = actor(req);
    if matches!(role, Some("agent" | "downstream")) && who != claimed {
        return Err(Status::permission_denied(format!(
            "agent_id `{claimed}`: this caller is `{who}`; an agent reports only as itself \
             (leave --agent-id unset to use the certificate's name)"
        )));
    }
    Ok(())
}

pub async fn report_sightings(
    svc: &Service,
    req: Request<pb::SightingsReport>,
) -> Result<Response<pb::ReportSightingsResponse>, Status> {
    check_agent_id(&req, &req.get_ref().agent_id)?;
    let r = req.into_inner();
    let n = r.sightings.len() as u64;
    let coord = svc.coord.clone();
    blocking(move || coord.report_sightings(&r.agent_id, &r.sightings)).await?;
    if let Some(m) = &svc.metrics {
        m.sightings_reported.inc_by(n);
    }
    Ok(Response::new(pb::ReportSightingsResponse {}))
}

pub async fn report_status(
    svc: &Service,
    req: Request<pb::AgentStatus>,
) -> Result<Response<pb::ReportStatusResponse>, Status> {
    check_agent_id(&req, &req.get_ref().agent_id)?;
    // What a subscriber is follows from its identity when roles are checked:
    // an edge identity (an XDP agent or a BGP exporter) cannot pass for a
    // coordinator, nor the other way round.
    let claimed = pb::SubscriberKind::try_from(req.get_ref().kind).ok();
    let role = req
        .metadata()
        .get(ROLE_HEADER)
        .and_then(|v| v.to_str().ok());
    let kind = match role {
        Some("agent") if claimed == Some(pb::SubscriberKind::Bgp) => Some(pb::SubscriberKind::Bgp),
        Some("agent") => Some(pb::SubscriberKind::Agent),
        Some("downstream") => Some(pb::SubscriberKind::Downstream),
        _ => None,
    };
    let mut s = req.into_inner();
    if let Some(k) = kind {
        s.kind = k as i32;
    }
    let coord = svc.coord.clone();
    blocking(move || coord.report(&s)).await?;
    Ok(Response::new(pb::ReportStatusResponse {}))
}
