//! Admin operations: the protected allowlist, held changes, the audit log,
//! guard settings.

use c2wall_model::{wire::records_from_wire, HeldKind, HeldState, Target};
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::core::{now, Coordinator, Origin, Published};
use crate::error::CoordError;
use crate::guards::{GuardConfig, Guards};
use crate::import::ImportOptions;
use crate::store::{AuditEvent, PendingChange};

/// What confirming a held change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Published(Published),
    Imported(crate::import::ImportOutcome),
}

impl Coordinator {
    /// Floors and breaker thresholds (the protected list comes from the store).
    pub fn set_guard_config(&self, cfg: GuardConfig) {
        let mut inner = self.inner.lock().expect("lock");
        let protected = inner.guards.protected.clone();
        inner.guards = Guards::new(cfg, protected);
    }

    /// Why `target` from `source` would be refused, if it would.
    pub fn guard_check(&self, target: &Target, source: &str) -> Option<String> {
        self.inner
            .lock()
            .expect("lock")
            .guards
            .refuse(target, source)
    }

    /// Writes one event to the audit log (the coordinator's own workers'
    /// decisions, e.g. an upstream entry vetoed).
    pub fn audit_event(
        &self,
        origin: &Origin,
        action: &str,
        detail: &str,
        reason: &str,
    ) -> Result<(), CoordError> {
        let e = origin.audit(now(), action, detail, reason);
        self.inner.lock().expect("lock").store.audit(&e)
    }

    /// The protected allowlist as stored: prefixes, then domains.
    pub fn protected(&self) -> Vec<(Target, String)> {
        let inner = self.inner.lock().expect("lock");
        inner
            .guards
            .protected
            .iter()
            .map(|(p, w)| (p.clone(), w.clone()))
            .collect()
    }

    /// The names the config protects (`[guards] protected_domains`).
    pub fn protected_by_config(&self) -> Vec<c2wall_model::DomainName> {
        self.inner
            .lock()
            .expect("lock")
            .guards
            .config_domains()
            .to_vec()
    }

    /// Adds (`why` given) or removes a protected prefix or domain, audited.
    /// Adding one that listed entries overlap is refused, naming them:
    /// withdraw first. A protected domain protects its whole subtree.
    pub fn protect(
        &self,
        prefix: Target,
        why: Option<&str>,
        origin: &Origin,
        reason: &str,
    ) -> Result<(), CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        let (action, detail) = match why {
            Some(w) => {
                // Upstream entries are not withdrawn here: the protection
                // vetoes them (their follower leaves them out within a
                // second, and takes them again once it is removed).
                let state = self.state.read().expect("lock");
                let overlapping: Vec<String> = state
                    .listed_identities()
                    .filter(|i| overlaps(&i.target, &prefix))
                    .filter(|i| {
                        !state
                            .records_of(i)
                            .iter()
                            .all(|r| r.source.starts_with(c2wall_model::UPSTREAM_SOURCE_PREFIX))
                    })
                    .take(5)
                    .map(|i| i.to_string())
                    .collect();
                if !overlapping.is_empty() {
                    return Err(CoordError::Precondition(format!(
                        "listed entries overlap {prefix}: {} (withdraw them first)",
                        overlapping.join(", ")
                    )));
                }
                ("protect", format!("{prefix} ({w})"))
            }
            None => {
                if !inner.guards.protected.contains_key(&prefix) {
                    let in_config = prefix
                        .domain()
                        .is_some_and(|d| inner.guards.config_domains().contains(&d.name));
                    if in_config {
                        return Err(CoordError::Precondition(format!(
                            "{} is protected by the coordinator's config ([guards] \
                             protected_domains): remove it there",
                            prefix
                                .domain()
                                .map(|d| d.name.to_string())
                                .unwrap_or_default()
                        )));
                    }
                    return Err(CoordError::NotFound(format!("{prefix} is not protected")));
                }
                ("unprotect", prefix.to_string())
            }
        };
        let audit = origin.audit(now(), action, &detail, reason);
        inner
            .store
            .set_protected(&prefix.to_string(), why, &audit)?;
        match why {
            Some(w) => inner.guards.protected.insert(prefix.clone(), w.to_string()),
            None => inner.guards.protected.remove(&prefix),
        };
        Ok(())
    }

    pub fn pending(&self, id: Option<u64>) -> Result<Vec<PendingChange>, CoordError> {
        self.reader.lock().expect("lock").pending(id)
    }

    /// Applies (`confirm`) or drops a held change, audited either way.
    pub fn resolve_pending(
        &self,
        id: u64,
        confirm: bool,
        origin: &Origin,
        reason: &str,
    ) -> Result<Option<Confirmed>, CoordError> {
        let held = self
            .pending(Some(id))?
            .into_iter()
            .find(|p| p.state == HeldState::Open)
            .ok_or_else(|| CoordError::NotFound(format!("pending change #{id} is not open")))?;
        let detail = format!(
            "pending #{id} ({} by {}): {}",
            held.kind, held.actor, held.summary
        );
        if !confirm {
            let audit = origin.audit(now(), "reject", &detail, reason);
            self.inner.lock().expect("lock").store.close_pending(
                id,
                HeldState::Rejected,
                &audit,
            )?;
            return Ok(None);
        }
        let bad = |e: prost::DecodeError| CoordError::Corrupt(format!("pending #{id}: {e}"));
        let applied = match held.kind {
            HeldKind::Import => {
                let c = pb::ImportChunk::decode(held.request.as_slice()).map_err(bad)?;
                let records = records_from_wire(&c.entries, "entries")?;
                let opts = ImportOptions {
                    ttl: (c.ttl_seconds > 0).then_some(c.ttl_seconds),
                };
                let as_held = Origin::new(&held.actor, &origin.peer);
                Confirmed::Imported(self.replace_source_confirmed(
                    &c.source,
                    records,
                    &opts,
                    &as_held,
                    &held.reason,
                )?)
            }
            HeldKind::Publish => {
                let r = pb::PublishRequest::decode(held.request.as_slice()).map_err(bad)?;
                let upserts = records_from_wire(&r.upserts, "upserts")?;
                let withdrawals = r
                    .withdrawals
                    .iter()
                    .map(|w| {
                        Ok(crate::core::Withdrawal {
                            identity: c2wall_model::wire::identity_from_wire(
                                &w.key.clone().unwrap_or_default(),
                            )?,
                            source: (!w.source.is_empty()).then(|| w.source.clone()),
                        })
                    })
                    .collect::<Result<Vec<_>, c2wall_model::wire::WireError>>()?;
                let as_held = Origin::new(&held.actor, &origin.peer);
                Confirmed::Published(self.publish(
                    upserts,
                    withdrawals,
                    &as_held,
                    &held.reason,
                    true,
                )?)
            }
        };
        let audit = origin.audit(now(), "confirm", &detail, reason);
        self.inner
            .lock()
            .expect("lock")
            .store
            .close_pending(id, HeldState::Confirmed, &audit)?;
        Ok(Some(applied))
    }

    pub fn audit_log(&self, before: u64, limit: u32) -> Result<Vec<AuditEvent>, CoordError> {
        self.reader.lock().expect("lock").audit_log(before, limit)
    }
}

impl Coordinator {
    /// Stops the promotion of `ident`'s monitor records (of `source`, or of
    /// every source): they stay monitor. One version, audited.
    pub fn object(
        &self,
        ident: &c2wall_model::Identity,
        source: Option<&str>,
        origin: &Origin,
        reason: &str,
    ) -> Result<crate::store::VersionInfo, CoordError> {
        let t = now();
        let mut inner = self.writer()?;
        let state = self.state.read().expect("lock");
        let changes: Vec<crate::store::RecordChange> = state
            .records_of(ident)
            .into_iter()
            .filter(|r| r.promote_at.is_some() && source.is_none_or(|s| s == r.source))
            .map(|before| {
                let mut after = before.clone();
                after.promote_at = None;
                crate::store::RecordChange::Put {
                    before: Some(before.clone()),
                    after,
                }
            })
            .collect();
        if changes.is_empty() {
            return Err(CoordError::NotFound(format!(
                "`{ident}` has no record scheduled for promotion"
            )));
        }
        let p = state.prepare(changes, [], t);
        drop(state);
        self.commit(&mut inner, p, origin, "object", reason, t)
    }

    /// Sampled packets agents reported for `ident` while it only monitored.
    pub fn sampled_would_drops(&self, ident: &c2wall_model::Identity) -> Result<u64, CoordError> {
        let key = c2wall_model::wire::identity_to_wire(ident);
        let keep = |s: &pb::Sighting| !s.dropped && s.entry.as_ref() == Some(&key);
        let reader = self.reader.lock().expect("lock");
        Ok(reader
            .sightings(0, &keep, usize::MAX)?
            .iter()
            .map(|(_, s)| s.count)
            .sum())
    }
}

/// The store's lineage and an admin's explicit move of the fleet to it
/// (see [`crate::integrity`]).
impl Coordinator {
    /// The store's lineage and the move in force.
    pub fn lineage(&self) -> (Vec<u8>, Option<pb::LineageMove>) {
        let inner = self.inner.lock().expect("lock");
        (inner.lineage.clone(), inner.moved.clone())
    }

    /// An admin's explicit move of the fleet from `from` (up to
    /// `from_version`) to this store's lineage: from now on its snapshots
    /// carry the move, signed, and subscribers of `from` take them.
    pub fn move_lineage(
        &self,
        from: Vec<u8>,
        from_version: u64,
        origin: &Origin,
        reason: &str,
    ) -> Result<pb::LineageMove, CoordError> {
        let mut inner = self.inner.lock().expect("lock");
        if from == inner.lineage {
            return Err(CoordError::Precondition(format!(
                "from_lineage: {} is this store's own lineage",
                c2wall_model::sign::hex(&from)
            )));
        }
        let to = inner.lineage.clone();
        let m = crate::integrity::move_of(from, from_version, to.clone(), &origin.actor, reason);
        let audit = origin.audit(
            now(),
            "lineage-move",
            &format!(
                "lineage {} (up to version {from_version}) -> {}",
                c2wall_model::sign::hex(&m.from_lineage),
                c2wall_model::sign::hex(&to)
            ),
            reason,
        );
        inner.store.set_lineage(&to, &m.encode_to_vec(), &audit)?;
        inner.moved = Some(m.clone());
        drop(inner);
        self.forget_snapshot();
        Ok(m)
    }
}

/// Some address or name is covered by both: prefixes that nest, or a domain
/// at or below a protected one (a protected domain covers its subtree, and a
/// wildcard entry covers the protected name if it lies above it).
fn overlaps(listed: &Target, protected: &Target) -> bool {
    match (listed, protected) {
        (Target::Prefix(a), Target::Prefix(b)) => a.contains(b) || b.contains(a),
        (Target::Domain(a), Target::Domain(b)) => a.touches_subtree(&b.name),
        _ => false,
    }
}
