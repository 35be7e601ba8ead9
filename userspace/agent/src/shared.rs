//! The daemon's state behind one lock: the engine and its kernel maps, the
//! settings, the local files, the centre's mode override. The coordinator's
//! set is not here: its one owner is `c2wall_agent::sync::Synced`, which
//! hands it in when it changes.

use std::time::{SystemTime, UNIX_EPOCH};

use c2wall_agent::{
    combine::{enforce, merge},
    config::{ModeArg, RunArgs, Settings},
    dataplane::Dataplane,
    engine::Engine,
    follow::table::Followed,
    kernel::KernelMaps,
    metrics::Metrics,
    sync::{EntryChange, SyncStatus, SyncedSet},
    AgentError,
};
use c2wall_common::*;
use c2wall_model::Mode;
use c2wall_proto::v1 as pb;
use std::sync::Arc;

use crate::observe::record;

pub(crate) struct Shared {
    pub(crate) engine: Engine<KernelMaps>,
    pub(crate) settings: Settings,
    /// The command line, re-resolved against the config file on SIGHUP.
    pub(crate) args: RunArgs,
    /// The centre's kill switch, overriding settings.mode.
    pub(crate) mode_override: Option<ModeArg>,
    /// Interfaces attached at start, with their XDP mode.
    pub(crate) attached: Vec<(String, &'static str)>,
    /// The last good read of the local files, and the identities they list.
    pub(crate) files: c2wall_agent::source::Files,
    /// The kernel holds a newer coordinator version than the saved list
    /// (saving had failed): nothing is applied over it until the
    /// coordinator's snapshot arrives.
    pub(crate) kernel_ahead: bool,
    pub(crate) sync: Arc<SyncStatus>,
    /// Addresses followed from DNS answers (see following.rs).
    pub(crate) followed: Followed,
}

impl Shared {
    /// The mode in force: the centre's override, else the configured one.
    pub(crate) fn mode(&self) -> ModeArg {
        self.mode_override.unwrap_or(self.settings.mode)
    }

    /// Applies the centre's kill switch ("" = back to the configured mode),
    /// remembering it across restarts.
    pub(crate) fn set_override(&mut self, mode: Option<Mode>, metrics: &Metrics) {
        let wanted = mode.map(ModeArg::from);
        if wanted == self.mode_override {
            return;
        }
        let file = self.settings.paths.mode_override_file();
        let saved = match wanted {
            Some(m) => c2wall_agent::ids::write_atomic(&file, m.name().as_bytes()),
            None => std::fs::remove_file(&file)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|source| AgentError::WriteFile { path: file, source }),
        };
        if let Err(e) = saved {
            tracing::error!(error = %e, "persisting the centre's mode override");
        }
        self.mode_override = wanted;
        let m = self.mode();
        match self.engine.applier.set_mode(m.code()) {
            Ok(()) => {
                metrics.set_mode(m.name());
                tracing::warn!(
                    mode = m.name(),
                    from_centre = wanted.is_some(),
                    "mode changed by the coordination centre"
                );
            }
            Err(e) => tracing::error!(error = %e, "applying the centre's mode"),
        }
    }

    /// Enforces the files with the coordinator's `set` in full.
    pub(crate) fn apply(&mut self, set: &SyncedSet, metrics: &Metrics) -> Result<(), AgentError> {
        if self.kernel_ahead {
            tracing::warn!(
                version = set.version,
                "the kernel holds a newer coordinator list than was saved: the lists are \
                 applied once the coordinator's snapshot arrives"
            );
            return Ok(());
        }
        let snap = merge(&self.files, set, &self.followed);
        let r = self.engine.sync(&snap);
        record(&self.engine, r, metrics, "full")
    }

    /// A coordinator update: the whole set, or (after deltas) the entries that
    /// changed.
    pub(crate) fn apply_coordinator(
        &mut self,
        set: &SyncedSet,
        changes: Option<&[EntryChange]>,
        metrics: &Metrics,
    ) -> Result<(), AgentError> {
        let kind = if changes.is_some() && self.engine.has_full_state() {
            "delta"
        } else {
            "full"
        };
        let r = enforce(&mut self.engine, &self.files, set, changes, &self.followed);
        record(&self.engine, r, metrics, kind)?;
        self.kernel_ahead = false;
        // The kernel's record of what it holds, read back at the next start.
        self.engine.applier.set_synced(set.version, &set.lineage)?;
        Ok(())
    }
}

impl Shared {
    /// What the agent reports to the coordinator (`c2wall agents`).
    pub(crate) fn status(&self) -> pb::AgentStatus {
        let c = self
            .engine
            .applier
            .dataplane()
            .counters()
            .unwrap_or_default();
        let sum = |v: u32| -> u64 {
            [DIR_TO_CC, DIR_FROM_CC]
                .iter()
                .flat_map(|d| {
                    [FAM_IDX_V4, FAM_IDX_V6].map(|f| verdict_counter(v, *d, f, UNIT_PACKETS))
                })
                .map(|i| c.get(i as usize).copied().unwrap_or(0))
                .sum()
        };
        let contact = self
            .sync
            .last_contact
            .load(std::sync::atomic::Ordering::Relaxed);
        pb::AgentStatus {
            agent_id: self.settings.agent_id.clone(),
            interfaces: self.settings.interfaces.clone(),
            mode: self.mode().name().into(),
            entries: self.engine.entries() as u64,
            dropped_packets: sum(VERDICT_DROP),
            would_drop_packets: sum(VERDICT_WOULD_DROP),
            seconds_since_contact: if contact == 0 {
                u64::MAX
            } else {
                (unix_now() - contact).max(0) as u64
            },
            sync_error: self.sync.last_error.lock().expect("lock").clone(),
            labels: self.settings.labels.clone().into_iter().collect(),
            // The set's owner stamps what it enforces (Synced::stamp).
            ..Default::default()
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
