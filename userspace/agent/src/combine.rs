//! The local files, the coordinator's set and the addresses followed from
//! DNS answers as one list, in that order of precedence: a local line wins
//! over the coordinator's entry of the same identity (an engineer's
//! override), either wins over a followed address, and the allowlist is
//! local only.

use std::borrow::Cow;

use crate::dataplane::Dataplane;
use crate::engine::{Engine, SyncReport};
use crate::error::AgentError;
use crate::follow::table::Followed;
use crate::source::{Files, Snapshot};
use crate::sync::{EntryChange, SyncedSet};

/// The local files' snapshot with the coordinator's entries and the
/// followed addresses added, each only where no earlier layer has its
/// identity.
pub fn merge<'f>(
    files: &'f Files,
    coordinator: &SyncedSet,
    followed: &Followed,
) -> Cow<'f, Snapshot> {
    let local = files;
    let files = files.snapshot();
    // The files alone (no coordinator, nothing followed) are not copied:
    // a million-entry file would be 40 MiB more.
    if coordinator.entries.is_empty() && followed.entries().next().is_none() {
        return Cow::Borrowed(files);
    }
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
    out.entries.extend(followed.entries().filter(|e| {
        let id = e.identity();
        !local.contains(&id) && !coordinator.entries.contains_key(&id)
    }));
    Cow::Owned(out)
}

/// Enforces the coordinator's set on top of the local files: the changed
/// entries alone when `changes` is given and the engine has a full state,
/// otherwise a full merge. The identities the files list override the
/// coordinator's. A change to an identity also followed from
/// DNS takes the full merge, so the followed entry stays when the
/// coordinator's goes.
pub fn enforce<D: Dataplane>(
    engine: &mut Engine<D>,
    files: &Files,
    set: &SyncedSet,
    changes: Option<&[EntryChange]>,
    followed: &Followed,
) -> Result<SyncReport, AgentError> {
    match changes {
        Some(changes)
            if engine.has_full_state() && !changes.iter().any(|(id, _)| followed.holds(id)) =>
        {
            let ours: Vec<_> = changes
                .iter()
                .filter(|(id, _)| !files.contains(id))
                .cloned()
                .collect();
            engine.sync_changes(&ours)
        }
        _ => engine.sync(&merge(files, set, followed)),
    }
}

/// Applies changes of followed addresses where no earlier layer lists the
/// same identity (there the file's or the coordinator's entry stays).
pub fn enforce_followed<D: Dataplane>(
    engine: &mut Engine<D>,
    local: &Files,
    set: &SyncedSet,
    changes: Vec<EntryChange>,
) -> Result<Option<SyncReport>, AgentError> {
    let ours: Vec<EntryChange> = changes
        .into_iter()
        .filter(|(id, _)| !local.contains(id) && !set.entries.contains_key(id))
        .collect();
    if ours.is_empty() || !engine.has_full_state() {
        return Ok(None);
    }
    engine.sync_changes(&ours).map(Some)
}
