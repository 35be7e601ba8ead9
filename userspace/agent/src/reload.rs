//! SIGHUP: the config file and the lists read again, the difference applied.

use std::sync::Mutex;

use anyhow::{Context, Result};
use c2wall_agent::{
    config::Settings,
    metrics::Metrics,
    source::{file::FileSource, BlocklistSource, Files},
    sync::{SyncedHandle, SyncedSet},
};

use crate::shared::Shared;

pub(crate) fn report_rejected(rejected: &[c2wall_agent::source::Rejected]) {
    for r in rejected {
        tracing::warn!("rejected {r}");
    }
}

/// SIGHUP: re-read the config file (mode, files) and the lists; apply the difference.
/// Locks the coordinator's set before the daemon's state, as its owner does
/// when it applies (one lock order, no deadlock).
pub(crate) fn reload(
    shared: &Mutex<Shared>,
    synced: Option<&SyncedHandle>,
    metrics: &Metrics,
) -> Result<()> {
    let owner = synced.map(|h| h.lock().expect("lock"));
    let empty = SyncedSet::default();
    let set = owner.as_ref().map_or(&empty, |o| o.set());
    let mut s = shared.lock().expect("lock");
    if s.settings.source.is_some() {
        match Settings::resolve(&s.args) {
            Ok(new) => {
                s.settings.mode = new.mode;
                s.settings.sample_budget = new.sample_budget;
                s.settings.blocklists = new.blocklists;
                s.settings.allowlist = new.allowlist;
            }
            Err(e) => tracing::error!("keeping the previous settings: {e}"),
        }
    }
    let mode = s.mode();
    s.engine.applier.set_mode(mode.code())?;
    let budget = s.settings.sample_budget;
    s.engine.applier.set_sample_budget(budget)?;
    metrics.set_mode(mode.name());
    let mut source = FileSource {
        blocklists: s.settings.blocklists.clone(),
        allowlist: s.settings.allowlist.clone(),
    };
    let snap = match source.snapshot() {
        Ok(snap) => snap,
        Err(e) => {
            metrics.source_errors.inc();
            return Err(e).context("re-reading the lists (the previous list stays enforced)");
        }
    };
    report_rejected(&snap.rejected);
    s.files = Files::new(snap);
    s.apply(set, metrics)
        .context("applying the blocklist (the previous list stays enforced)")
}
