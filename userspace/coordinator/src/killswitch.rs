//! The centre's kill switch: a mode (off, monitor, enforce) for the whole
//! fleet or one agent, overriding the agents' own. Changes reach every open
//! stream at once (a watch channel, no polling) and are audited.

use c2wall_model::{wire::WireError, Mode, Modes, Scope};

use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;

impl Coordinator {
    /// Sets (or, with `None`, clears) the override for `scope`.
    pub fn set_mode(
        &self,
        mode: Option<Mode>,
        scope: &Scope,
        origin: &Origin,
        reason: &str,
    ) -> Result<Modes, CoordError> {
        if matches!(scope, Scope::Agent(a) if a == "*") {
            return Err(CoordError::Invalid(WireError {
                field: "agent_id".into(),
                reason: "`*` is not an agent id; leave it empty for the fleet".into(),
            }));
        }
        let detail = match mode {
            None => format!("{scope}: override cleared"),
            Some(m) => format!("{scope}: {m}"),
        };
        let mut inner = self.inner.lock().expect("lock");
        let audit = origin.audit(now(), "mode", &detail, reason);
        inner.store.set_mode(scope, mode, &audit)?;
        let modes = inner.store.modes()?;
        drop(inner);
        self.modes.send_replace(modes.clone());
        Ok(modes)
    }

    pub fn modes(&self) -> tokio::sync::watch::Receiver<Modes> {
        self.modes.subscribe()
    }
}
