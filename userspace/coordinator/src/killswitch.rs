//! The centre's kill switch: a mode (off, monitor, enforce) for the whole
//! fleet or one agent, overriding the agents' own. Changes reach every open
//! stream at once (a watch channel, no polling) and are audited.

use std::collections::BTreeMap;

use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;

/// The overrides in force ("" = none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    pub fleet: String,
    pub agents: BTreeMap<String, String>,
}

impl Modes {
    pub(crate) fn from_rows(rows: Vec<(String, String)>) -> Self {
        let mut m = Modes::default();
        for (scope, mode) in rows {
            if scope == "*" {
                m.fleet = mode;
            } else {
                m.agents.insert(scope, mode);
            }
        }
        m
    }

    /// The mode `agent` must run in ("" = its own): its override, else the fleet's.
    pub fn for_agent(&self, agent: &str) -> String {
        self.agents
            .get(agent)
            .cloned()
            .unwrap_or_else(|| self.fleet.clone())
    }
}

impl Coordinator {
    /// Sets (or, with an empty `mode`, clears) the override for `agent_id`
    /// (empty = the fleet).
    pub fn set_mode(
        &self,
        mode: &str,
        agent_id: &str,
        origin: &Origin,
        reason: &str,
    ) -> Result<Modes, CoordError> {
        if !matches!(mode, "" | "off" | "monitor" | "enforce") {
            return Err(CoordError::Invalid(c2wall_model::wire::WireError {
                field: "mode".into(),
                reason: format!("`{mode}` is not off, monitor or enforce (or empty to clear)"),
            }));
        }
        let scope = if agent_id.is_empty() { "*" } else { agent_id };
        let who = if agent_id.is_empty() {
            "fleet".to_string()
        } else {
            format!("agent {agent_id}")
        };
        let detail = if mode.is_empty() {
            format!("{who}: override cleared")
        } else {
            format!("{who}: {mode}")
        };
        let mut inner = self.inner.lock().expect("lock");
        let audit = origin.audit(now(), "mode", &detail, reason);
        inner
            .store
            .set_mode(scope, (!mode.is_empty()).then_some(mode), &audit)?;
        let modes = Modes::from_rows(inner.store.modes()?);
        drop(inner);
        self.modes.send_replace(modes.clone());
        Ok(modes)
    }

    pub fn modes(&self) -> tokio::sync::watch::Receiver<Modes> {
        self.modes.subscribe()
    }
}
