//! The calls that change the list (publish, import, rollback), counted by the
//! trait methods in mod.rs, and list paging tokens.

use super::*;
use crate::CoordError;

/// Publish-like calls, counted by the trait methods above.
impl Service {
    pub(super) async fn do_publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let origin = origin(&req);
        check_reason("reason", &req.get_ref().reason)?;
        if req.get_ref().expedite {
            let role = req
                .metadata()
                .get(ROLE_HEADER)
                .and_then(|v| v.to_str().ok());
            if role.is_some_and(|r| r != "admin") {
                return Err(Status::permission_denied(
                    "--expedite sends a version past the rollout stages: admin only",
                ));
            }
        }
        let upserts = records_from_wire(&req.get_ref().upserts, "upserts")?;
        if let Some(i) = upserts.iter().position(|u| !u.chain.is_empty()) {
            return Err(Status::invalid_argument(format!(
                "upserts[{i}].chain: set only by a coordinator following an upstream"
            )));
        }
        check_sources(
            &self.publishers,
            &req,
            upserts
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("upserts[{i}].source"), Some(u.source.as_str())))
                .chain(req.get_ref().withdrawals.iter().enumerate().map(|(i, w)| {
                    (
                        format!("withdrawals[{i}].source"),
                        (!w.source.is_empty()).then_some(w.source.as_str()),
                    )
                })),
        )?;
        let r = req.into_inner();
        let withdrawals = r
            .withdrawals
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let key = w.key.as_ref().ok_or_else(|| WireError {
                    field: format!("withdrawals[{i}].key"),
                    reason: "missing".into(),
                })?;
                Ok(Withdrawal {
                    identity: identity_from_wire(key)
                        .map_err(|e| e.within(&format!("withdrawals[{i}].key")))?,
                    source: (!w.source.is_empty()).then(|| w.source.clone()),
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        if upserts.is_empty() && withdrawals.is_empty() {
            return Err(Status::invalid_argument(
                "an empty batch: nothing to publish",
            ));
        }
        let (n_up, n_wd) = (upserts.len() as u32, withdrawals.len() as u32);
        let (coord, rollout) = (self.coord.clone(), self.rollout.clone());
        let (reason, expedite) = (r.reason, r.expedite);
        let p = blocking(move || {
            let p = coord.publish(upserts, withdrawals, &origin, &reason, false)?;
            if let (Published::Version(v), true) = (&p, expedite) {
                rollout.release(&coord, v.version, &origin, &format!("expedite: {reason}"))?;
            }
            Ok::<_, CoordError>(p)
        })
        .await?;
        Ok(Response::new(match p {
            Published::Version(v) => pb::PublishResponse {
                version: v.version,
                digest: v.digest,
                upserted: n_up,
                withdrawn: n_wd,
                ..Default::default()
            },
            Published::Held(h) => pb::PublishResponse {
                pending_id: h.id,
                pending_summary: h.summary,
                ..Default::default()
            },
        }))
    }

    pub(super) async fn do_import(
        &self,
        req: Request<tonic::Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let origin = origin(&req);
        let Received {
            source,
            reason,
            ttl,
            records,
        } = match self.receive_import(req).await {
            Ok(r) => r,
            Err((why, status)) => {
                tracing::warn!(actor = %origin.actor, peer = %origin.peer, why,
                    error = %status.message(), "import abandoned: nothing committed");
                if let Some(m) = &self.metrics {
                    m.imports_abandoned.with_label_values(&[why]).inc();
                }
                return Err(status);
            }
        };
        let coord = self.coord.clone();
        let opts = crate::import::ImportOptions {
            ttl: (ttl > 0).then_some(ttl),
        };
        let o = blocking(move || coord.replace_source(&source, records, &opts, &origin, &reason))
            .await?;
        Ok(Response::new(pb::ImportResponse {
            version: o.version.as_ref().map_or(0, |v| v.version),
            digest: o.version.map(|v| v.digest).unwrap_or_default(),
            added: o.added as u32,
            updated: o.updated as u32,
            withdrawn: o.withdrawn as u32,
            unchanged: o.unchanged as u32,
            refused: o.refused as u32,
            refusals: o.refusals,
            pending_id: o.held.unwrap_or(0),
        }))
    }

    /// Reads an import stream to its chunk marked `end`, within the limits.
    /// A stream that ends without it (a client's cancel, a reset), stops
    /// sending, or grows past the limits yields the reason and the status to
    /// answer; nothing of it is kept.
    async fn receive_import(
        &self,
        req: Request<tonic::Streaming<pb::ImportChunk>>,
    ) -> Result<Received, (&'static str, Status)> {
        let limits = self.publishers.clone();
        let meta = Request::from_parts(req.metadata().clone(), Default::default(), ());
        let mut stream = req.into_inner();
        let (mut source, mut reason, mut ttl) = (String::new(), String::new(), 0);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let idle = self.limits.import_idle();
        let invalid = |s: Status| ("invalid", s);
        loop {
            let chunk = match tokio::time::timeout(idle, stream.message()).await {
                Err(_) => {
                    return Err((
                        "idle",
                        Status::deadline_exceeded(format!(
                            "no chunk for {}s: the import is abandoned, nothing committed",
                            idle.as_secs()
                        )),
                    ))
                }
                Ok(Err(s)) => return Err(("stream_error", decode_status(s))),
                Ok(Ok(None)) => {
                    return Err((
                        "unterminated",
                        Status::aborted(
                            "the import stream ended without a chunk marked `end`: nothing \
                             committed (was it cancelled or cut off?)",
                        ),
                    ))
                }
                Ok(Ok(Some(c))) => c,
            };
            bytes += chunk.encoded_len();
            if bytes > self.limits.import_max_bytes {
                return Err((
                    "too_large",
                    Status::resource_exhausted(format!(
                        "the import is over {} bytes ([limits] import_max_bytes): nothing \
                         committed",
                        self.limits.import_max_bytes
                    )),
                ));
            }
            if records.len() + chunk.entries.len() > self.limits.import_max_entries {
                return Err((
                    "too_large",
                    Status::resource_exhausted(format!(
                        "the import is over {} entries (--import-max-entries): nothing committed",
                        self.limits.import_max_entries
                    )),
                ));
            }
            if source.is_empty() {
                check_sources(
                    &limits,
                    &meta,
                    [("source".to_string(), Some(chunk.source.as_str()))],
                )
                .map_err(invalid)?;
                c2wall_model::limits::text(
                    "source",
                    &chunk.source,
                    c2wall_model::limits::SOURCE_BYTES,
                )
                .map_err(|e| invalid(e.into()))?;
                c2wall_model::limits::text(
                    "reason",
                    &chunk.reason,
                    c2wall_model::limits::REASON_BYTES,
                )
                .map_err(|e| invalid(e.into()))?;
                if !(0..=c2wall_model::limits::MAX_TTL_SECONDS).contains(&chunk.ttl_seconds) {
                    return Err(invalid(Status::invalid_argument(format!(
                        "ttl_seconds: {} is outside 0-{} (ten years)",
                        chunk.ttl_seconds,
                        c2wall_model::limits::MAX_TTL_SECONDS
                    ))));
                }
                source = chunk.source;
                reason = chunk.reason;
                ttl = chunk.ttl_seconds;
            } else if !chunk.source.is_empty() && chunk.source != source {
                return Err(invalid(Status::invalid_argument(format!(
                    "source: `{}` in a later chunk, but this import is for `{source}`",
                    c2wall_model::limits::quote(&chunk.source, 64)
                ))));
            }
            // Indices count across chunks: entries[i] is the i-th of the import.
            for e in &chunk.entries {
                let i = records.len();
                let r = c2wall_model::Record::try_from(e)
                    .map_err(|err| invalid(err.within(&format!("entries[{i}]")).into()))?;
                if !r.chain.is_empty() {
                    return Err(invalid(Status::invalid_argument(format!(
                        "entries[{i}].chain: set only by a coordinator following an upstream"
                    ))));
                }
                records.push(r);
            }
            if chunk.end {
                return Ok(Received {
                    source,
                    reason,
                    ttl,
                    records,
                });
            }
        }
    }

    pub(super) async fn do_rollback(
        &self,
        req: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let origin = origin(&req);
        let r = req.into_inner();
        check_reason("reason", &r.reason)?;
        let (coord, rollout) = (self.coord.clone(), self.rollout.clone());
        // A rollback is never staged: it goes to every stage at once.
        let v = blocking(move || {
            let v = coord.rollback(r.version, &origin, &r.reason)?;
            rollout.release(&coord, v.version, &origin, "rollback")?;
            Ok::<_, CoordError>(v)
        })
        .await?;
        Ok(Response::new(pb::PublishResponse {
            version: v.version,
            digest: v.digest,
            upserted: v.upserts,
            withdrawn: v.removals,
            ..Default::default()
        }))
    }
}

/// An import stream read to its marked end.
struct Received {
    source: String,
    reason: String,
    ttl: i64,
    records: Vec<c2wall_model::Record>,
}

/// A page token names the last record of the page:
/// `prefix-or-domain|protocol|port|source`.
pub(super) fn page_token(r: &c2wall_model::Record) -> String {
    let (proto, port) = r
        .entry
        .scope
        .map(|s| (s.protocol.number(), s.port))
        .unwrap_or((0, 0));
    format!("{}|{proto}|{port}|{}", r.entry.target, r.source)
}

pub(super) fn parse_page_token(t: &str) -> Option<crate::state::RecordKey> {
    let mut f = t.splitn(4, '|');
    let target: c2wall_model::Target = f.next()?.parse().ok()?;
    let proto: u8 = f.next()?.parse().ok()?;
    let port: u16 = f.next()?.parse().ok()?;
    let source = f.next()?.to_string();
    let scope = match proto {
        0 => None,
        6 => Some(c2wall_model::PortScope {
            protocol: c2wall_model::Protocol::Tcp,
            port,
        }),
        17 => Some(c2wall_model::PortScope {
            protocol: c2wall_model::Protocol::Udp,
            port,
        }),
        _ => return None,
    };
    Some((c2wall_model::Identity { target, scope }, source))
}
