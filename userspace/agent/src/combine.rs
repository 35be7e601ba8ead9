//! The local files and the coordinator's set as one list: a local line wins
//! over the coordinator's entry of the same identity (an engineer's
//! override), and the allowlist is local only.

use std::collections::HashSet;

use c2wall_model::Identity;

use crate::dataplane::Dataplane;
use crate::engine::{Engine, SyncReport};
use crate::error::AgentError;
use crate::source::{identities, Snapshot};
use crate::sync::{EntryChange, SyncedSet};

/// The local files' snapshot with the coordinator's entries added. A local
/// line wins over the coordinator's entry of the same identity (an engineer's
/// override), and the allowlist is local only.
pub fn merge(files: &Snapshot, coordinator: &SyncedSet) -> Snapshot {
    let local = identities(files);
    let mut out = files.clone();
    let mut overridden = 0;
    for (id, e) in &coordinator.entries {
        if local.contains(id) {
            overridden += 1;
        } else {
            out.entries.push(e.clone());
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
pub fn enforce<D: Dataplane>(
    engine: &mut Engine<D>,
    files: &Snapshot,
    local: &HashSet<Identity>,
    set: &SyncedSet,
    changes: Option<&[EntryChange]>,
) -> Result<SyncReport, AgentError> {
    match changes {
        Some(changes) if engine.has_full_state() => {
            let ours: Vec<_> = changes
                .iter()
                .filter(|(id, _)| !local.contains(id))
                .cloned()
                .collect();
            engine.sync_changes(&ours)
        }
        _ => engine.sync(&merge(files, set)),
    }
}
