//! Explain: the records covering an address, and the upstream entries
//! covering it that this coordinator keeps out (and why).

use c2wall_model::{limits, Prefix};
use c2wall_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::Service;

pub(super) fn explain(
    svc: &Service,
    req: Request<pb::ExplainRequest>,
) -> Result<Response<pb::ExplainResponse>, Status> {
    let a = req.into_inner().address;
    let addr = a.trim().parse().map_err(|_| {
        Status::invalid_argument(format!(
            "address: `{}` is not an IP address",
            limits::quote(&a, 64)
        ))
    })?;
    let (matches, version) = svc.coord.explain(addr);
    let vetoed = svc
        .upstreams
        .vetoes_covering(&Prefix::host(addr))
        .into_iter()
        .map(|v| pb::Veto {
            entry: Some(pb::Entry::from(&v.record)),
            reason: v.reason,
        })
        .collect();
    Ok(Response::new(pb::ExplainResponse {
        matches: matches.iter().map(pb::Entry::from).collect(),
        version,
        vetoed,
    }))
}
