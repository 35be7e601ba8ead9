//! The protected allowlist over gRPC: a prefix or a domain (a protected
//! domain always covers everything below it).

use c2wall_model::{Domain, Target};
use c2wall_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{blocking, check_reason, origin, Service};
use crate::core::Coordinator;

pub(super) async fn protect(
    svc: &Service,
    req: Request<pb::ProtectRequest>,
) -> Result<Response<pb::ProtectedResponse>, Status> {
    let origin = origin(&req);
    let r = req.into_inner();
    check_reason("why", &r.why)?;
    check_reason("reason", &r.reason)?;
    let prefix: Target = match (r.prefix.trim(), r.domain.trim()) {
        (p, "") => Target::Prefix(
            p.parse()
                .map_err(|e| Status::invalid_argument(format!("prefix: {e}")))?,
        ),
        ("", d) if !d.starts_with('*') => Target::Domain(Domain {
            name: d
                .parse()
                .map_err(|e| Status::invalid_argument(format!("domain: {e}")))?,
            subtree: true,
        }),
        ("", d) => {
            return Err(Status::invalid_argument(format!(
                "domain: `{d}`: give the name alone; a protected domain always covers \
                     everything below it"
            )))
        }
        _ => {
            return Err(Status::invalid_argument(
                "prefix and domain are both set: protect one at a time",
            ))
        }
    };
    if !r.remove && r.why.trim().is_empty() {
        return Err(Status::invalid_argument(format!(
            "why: say why {prefix} must never be blocked"
        )));
    }
    let coord = svc.coord.clone();
    let why = (!r.remove).then(|| r.why.trim().to_string());
    blocking(move || coord.protect(prefix, why.as_deref(), &origin, &r.reason)).await?;
    Ok(Response::new(protected_response(&svc.coord)))
}

pub(super) fn protected_response(coord: &Coordinator) -> pb::ProtectedResponse {
    pb::ProtectedResponse {
        prefixes: coord
            .protected()
            .into_iter()
            .map(|(t, why)| match t {
                Target::Prefix(p) => pb::ProtectedPrefix {
                    prefix: p.to_string(),
                    why,
                    domain: String::new(),
                },
                Target::Domain(d) => pb::ProtectedPrefix {
                    domain: d.name.to_string(),
                    why,
                    prefix: String::new(),
                },
            })
            .chain(
                coord
                    .protected_by_config()
                    .into_iter()
                    .map(|n| pb::ProtectedPrefix {
                        domain: n.to_string(),
                        why: "[guards] protected_domains in the coordinator's config".into(),
                        prefix: String::new(),
                    }),
            )
            .collect(),
    }
}
