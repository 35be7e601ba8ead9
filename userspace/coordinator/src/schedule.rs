//! Changes the coordinator makes by itself, every second: validity windows
//! (expiry) and monitor-first promotions.

use c2wall_model::Action;

use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;
use crate::store::{RecordChange, VersionInfo};

impl Coordinator {
    /// Expired records leave, records whose window opened join: one version if
    /// anything changed.
    pub fn tick(&self) -> Result<Option<VersionInfo>, CoordError> {
        let t = now();
        let mut inner = self.writer()?;
        let state = self.state.read().expect("lock");
        let (expired, opened) = state.transitions(inner.last_tick, t);
        inner.last_tick = t;
        if expired.is_empty() && opened.is_empty() {
            return Ok(None);
        }
        let changes = expired
            .into_iter()
            .map(|before| RecordChange::Delete { before })
            .collect();
        let p = state.prepare(changes, opened, t);
        drop(state);
        if p.upserts.is_empty() && p.removals.is_empty() && p.changes.is_empty() {
            return Ok(None);
        }
        let origin = Origin::internal("expiry");
        self.commit(&mut inner, p, &origin, "expiry", "validity window", t)
            .map(Some)
    }

    /// Monitor-first: monitor records whose soak ended without an objection
    /// become drop records, as one version (actor `promotion`).
    pub fn promote_due(&self) -> Result<Option<VersionInfo>, CoordError> {
        let t = now();
        let mut inner = self.writer()?;
        let state = self.state.read().expect("lock");
        let due = state.due_promotions(t);
        if due.is_empty() {
            return Ok(None);
        }
        let changes: Vec<RecordChange> = due
            .into_iter()
            .map(|before| {
                let mut after = before.clone();
                after.entry.action = Action::Drop;
                after.promote_at = None;
                RecordChange::Put {
                    before: Some(before),
                    after,
                }
            })
            .collect();
        let n = changes.len();
        let p = state.prepare(changes, [], t);
        drop(state);
        let origin = Origin::internal("promotion");
        let reason = format!("{n} monitor entries soaked without objection");
        self.commit(&mut inner, p, &origin, "promote", &reason, t)
            .map(Some)
    }
}
