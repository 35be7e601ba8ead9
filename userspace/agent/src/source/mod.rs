//! Where the blocklist comes from. Files now; the coordinator stream implements
//! the same trait later.

pub mod file;

use c2wall_model::{Entry, Prefix};

/// One line a source could not use, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub origin: String,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.reason)
    }
}

/// What a source currently says.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    pub allow: Vec<Prefix>,
    pub rejected: Vec<Rejected>,
}

pub trait BlocklistSource {
    /// The complete desired state, or an error if it cannot be read at all (the
    /// caller then keeps enforcing what it has).
    fn snapshot(&mut self) -> Result<Snapshot, crate::error::AgentError>;
}

/// The local files' snapshot with the coordinator's entries added. A local
/// line wins over the coordinator's entry of the same identity (an engineer's
/// override), and the allowlist is local only.
pub fn merge(files: &Snapshot, coordinator: &crate::sync::SyncedSet) -> Snapshot {
    let local = identities(files);
    let mut out = files.clone();
    let mut overridden = 0;
    for (id, e) in &coordinator.entries {
        if local.contains(id) {
            overridden += 1;
        } else {
            out.entries.push(*e);
        }
    }
    if overridden > 0 {
        tracing::info!(
            overridden,
            "local blocklist lines override coordinator entries"
        );
    }
    out
}

/// Enforces the coordinator's set on top of the local files: the changed
/// entries alone when `changes` is given and the engine has a full state,
/// otherwise a full merge. `local` holds the identities the files list (they
/// override the coordinator's).
pub fn enforce<D: crate::dataplane::Dataplane>(
    engine: &mut crate::engine::Engine<D>,
    files: &Snapshot,
    local: &std::collections::HashSet<c2wall_model::Identity>,
    set: &crate::sync::SyncedSet,
    changes: Option<&[crate::sync::EntryChange]>,
) -> Result<crate::engine::SyncReport, crate::error::AgentError> {
    match changes {
        Some(changes) if engine.has_full_state() => {
            let ours: Vec<_> = changes
                .iter()
                .filter(|(id, _)| !local.contains(id))
                .copied()
                .collect();
            engine.sync_changes(&ours)
        }
        _ => engine.sync(&merge(files, set)),
    }
}

/// The identities a snapshot lists.
pub fn identities(s: &Snapshot) -> std::collections::HashSet<c2wall_model::Identity> {
    s.entries.iter().map(|e| e.identity()).collect()
}
