//! Explain: the records covering an address or a name, and the upstream
//! entries covering it that this coordinator keeps out (and why).

use c2wall_model::{limits, DomainName, Prefix};
use c2wall_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::Service;

pub(super) fn explain(
    svc: &Service,
    req: Request<pb::ExplainRequest>,
) -> Result<Response<pb::ExplainResponse>, Status> {
    let a = req.into_inner().address;
    let (matches, version, vetoes) = match a.trim().parse() {
        Ok(addr) => {
            let (m, v) = svc.coord.explain(addr);
            (m, v, svc.upstreams.vetoes_covering(&Prefix::host(addr)))
        }
        Err(_) if a.len() <= limits::NAME_BYTES && a.chars().any(|c| c.is_alphabetic()) => {
            let name: DomainName = a
                .parse()
                .map_err(|e| Status::invalid_argument(format!("address: {e}")))?;
            let (m, v) = svc.coord.explain_name(&name);
            (m, v, svc.upstreams.vetoes_covering_name(&name))
        }
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "address: `{}` is neither an IP address nor a DNS name",
                limits::quote(&a, 64)
            )))
        }
    };
    let vetoed = vetoes
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
