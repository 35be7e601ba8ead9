//! Infected-subscriber sightings reported by agents, for the ISP's follow-up
//! (`c2wall sightings`). Subscribers arrive pseudonymised unless the ISP
//! opted in to clear addresses on its edge nodes.

use c2wall_model::{wire::identity_from_wire, Family, Prefix};
use c2wall_proto::v1 as pb;

use crate::core::Coordinator;
use crate::error::CoordError;

fn invalid(field: String, reason: &str) -> CoordError {
    CoordError::Invalid(c2wall_model::wire::WireError {
        field,
        reason: reason.into(),
    })
}

impl Coordinator {
    /// Stores a report, all or nothing; invalid sightings name their index.
    pub fn report_sightings(&self, agent_id: &str, s: &[pb::Sighting]) -> Result<(), CoordError> {
        if agent_id.is_empty() {
            return Err(invalid("agent_id".into(), "missing"));
        }
        for (i, x) in s.iter().enumerate() {
            let key = x
                .entry
                .as_ref()
                .ok_or_else(|| invalid(format!("sightings[{i}].entry"), "missing"))?;
            identity_from_wire(key).map_err(|e| e.within(&format!("sightings[{i}].entry")))?;
            if x.subscriber.is_empty() {
                return Err(invalid(format!("sightings[{i}].subscriber"), "missing"));
            }
            if x.first_seen > x.last_seen {
                return Err(invalid(
                    format!("sightings[{i}].first_seen"),
                    "after last_seen",
                ));
            }
        }
        let mut inner = self.inner.lock().expect("lock");
        inner.store.add_sightings(agent_id, s)
    }

    /// Sightings newest first: of entries inside `within`, of one family,
    /// last seen at or after `since`.
    pub fn sightings(
        &self,
        within: Option<Prefix>,
        family: Option<Family>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<(String, pb::Sighting)>, CoordError> {
        let keep = |s: &pb::Sighting| {
            let Some(id) = s.entry.as_ref().and_then(|k| identity_from_wire(k).ok()) else {
                return false;
            };
            let prefix = id.prefix();
            within.is_none_or(|w| prefix.is_some_and(|p| w.contains(&p)))
                && family.is_none_or(|f| prefix.is_some_and(|p| p.family() == f))
        };
        self.reader
            .lock()
            .expect("lock")
            .sightings(since, &keep, limit)
    }
}
