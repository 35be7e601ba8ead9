//! The store is checked before it is served, and a fleet moves from one store
//! lineage to another only by an operator's explicit, signed, audited act.
//!
//! At start: the digest of the stored records must equal the digest the last
//! version recorded (a record changed or lost outside the coordinator fails
//! this), and the store must reach the high-water mark kept beside it (a store
//! re-created empty, restored from an older copy or missing its WAL fails
//! this). A damaged store is refused, naming what is wrong, unless the
//! operator starts with `--recover-store`: the store then gets a new lineage
//! whose snapshots carry a move from the old one, so agents take the
//! recovered list, and every other subscriber of the old lineage refuses it.

use std::path::PathBuf;

use c2wall_model::sign::hex;
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::error::CoordError;
use crate::highwater::{HighWater, Mark};
use crate::origin::{now, Origin};
use crate::state::State;
use crate::store::{Store, VersionInfo};

/// How the store is checked at start.
#[derive(Clone, Debug, Default)]
pub struct Integrity {
    /// The high-water mark file (None: none kept, e.g. in-process tests).
    pub highwater: Option<PathBuf>,
    /// The operator accepts a damaged store (`--recover-store REASON`).
    pub recover: Option<String>,
}

/// What the check hands the coordinator.
pub(crate) struct Checked {
    pub lineage: Vec<u8>,
    pub moved: Option<pb::LineageMove>,
    pub highwater: Option<HighWater>,
}

impl Integrity {
    pub(crate) fn check(
        &self,
        store: &mut dyn Store,
        state: &State,
        latest: Option<&VersionInfo>,
    ) -> Result<Checked, CoordError> {
        let (mut lineage, moved) = store.lineage()?;
        let mut moved = moved
            .map(|b| pb::LineageMove::decode(b.as_slice()))
            .transpose()
            .map_err(|e| CoordError::Corrupt(format!("lineage move: {e}")))?;
        let version = latest.map_or(0, |v| v.version);
        let mut problems = Vec::new();
        // The records' own digest, not the effective set's: which records
        // are active depends on when the expiry worker last ran.
        if let Some((v, want)) = latest.and_then(|v| Some((v, v.records_digest.as_ref()?))) {
            if state.records_digest.to_bytes() != *want {
                problems.push(format!(
                    "the stored records' digest {} differs from the digest version {} recorded \
                     ({}): records were changed or lost outside the coordinator",
                    state.records_digest,
                    v.version,
                    hex(want)
                ));
            }
        }
        let (mut highwater, mark) = match &self.highwater {
            Some(p) => {
                let (h, m) = HighWater::open(p)?;
                (Some(h), m)
            }
            None => (None, None),
        };
        if let (Some(m), Some(h)) = (&mark, &highwater) {
            if m.lineage != lineage {
                problems.push(format!(
                    "the store's lineage {} is not the lineage {} that acknowledged version {} \
                     ({}): the store was replaced or re-created",
                    hex(&lineage),
                    hex(&m.lineage),
                    m.version,
                    h.path().display()
                ));
            } else if m.version > version {
                problems.push(format!(
                    "versions {}..={} were acknowledged ({}) but the store ends at version \
                     {version}: restored from an older copy, or its WAL was lost",
                    version + 1,
                    m.version,
                    h.path().display()
                ));
            }
        }
        if !problems.is_empty() {
            let Some(reason) = &self.recover else {
                return Err(CoordError::Damaged(problems.join("; ")));
            };
            for p in &problems {
                tracing::error!(problem = %p, "--recover-store: serving a damaged store");
            }
            // Subscribers of the old lineage (up to the highest version it
            // acknowledged) may follow the new one; nobody else.
            let (from, from_version) = match &mark {
                Some(m) => (m.lineage.clone(), m.version.max(version)),
                None => (lineage.clone(), version),
            };
            let new = c2wall_model::sign::random32()[..16].to_vec();
            let m = move_of(from, from_version, new.clone(), "recover-store", reason);
            let audit = Origin::internal("recover-store").audit(
                now(),
                "recover",
                &format!(
                    "lineage {} -> {} (moves subscribers up to version {from_version}): {}",
                    hex(&m.from_lineage),
                    hex(&new),
                    problems.join("; ")
                ),
                reason,
            );
            store.set_lineage(&new, &m.encode_to_vec(), &audit)?;
            lineage = new;
            moved = Some(m);
        }
        if let Some(h) = highwater.as_mut() {
            let current = Mark {
                lineage: lineage.clone(),
                version,
                digest: state.digest.to_bytes(),
            };
            if mark.as_ref() != Some(&current) {
                if mark.is_none() && version > 0 {
                    tracing::warn!(path = %h.path().display(), version,
                        "no high-water mark yet: starting one at the store's latest version");
                }
                h.write(&current)?;
            }
        }
        Ok(Checked {
            lineage,
            moved,
            highwater,
        })
    }
}

pub(crate) fn move_of(
    from: Vec<u8>,
    from_version: u64,
    to: Vec<u8>,
    actor: &str,
    reason: &str,
) -> pb::LineageMove {
    pb::LineageMove {
        from_lineage: from,
        from_version,
        to_lineage: to,
        signature: Vec::new(),
        actor: actor.to_string(),
        at: now(),
        reason: reason.to_string(),
    }
}

/// Parses a lineage given in hex (as `c2wall agents` shows it).
pub fn parse_lineage(s: &str) -> Result<Vec<u8>, c2wall_model::wire::WireError> {
    let s = s.trim();
    let bad = || c2wall_model::wire::WireError {
        field: "from_lineage".into(),
        reason: format!(
            "`{}` is not a lineage (32 hex digits, as `c2wall agents` shows)",
            c2wall_model::limits::quote(s, 64)
        ),
    };
    if s.len() != 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    (0..16)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad()))
        .collect()
}
