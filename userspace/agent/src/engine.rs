//! Source snapshot -> entry ids -> compiled table -> kernel. Pure logic over a
//! [`Dataplane`], so it runs the same against the kernel and in tests.

use std::path::PathBuf;

use c2wall_model::{Action, Family, Prefix};

use crate::apply::{Applier, ApplyStats};
use crate::compile::compile;
use crate::dataplane::Dataplane;
use crate::error::AgentError;
use crate::ids::Ids;
use crate::source::Snapshot;

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub stats: ApplyStats,
    pub entries: usize,
    /// (family, action) -> count
    pub by_kind: Vec<((Family, Action), usize)>,
    pub allow: usize,
    pub rejected: usize,
}

pub struct Engine<D: Dataplane> {
    pub applier: Applier<D>,
    ids: Ids,
    ids_path: Option<PathBuf>,
}

impl<D: Dataplane> Engine<D> {
    pub fn new(applier: Applier<D>, ids: Ids, ids_path: Option<PathBuf>) -> Self {
        Engine {
            applier,
            ids,
            ids_path,
        }
    }

    /// Makes the kernel enforce `snap`. The allowlist grows before the blocklist
    /// changes and shrinks after it, so no moment is less protected than either
    /// end state.
    pub fn sync(&mut self, snap: &Snapshot) -> Result<SyncReport, AgentError> {
        let dp = self.applier.dataplane_mut();
        let current: Vec<Prefix> = dp.allowlist()?;
        for p in &snap.allow {
            if !current.contains(p) {
                dp.put_allow(p)?;
            }
        }
        // Ids change only if the apply succeeds, so a failed apply forgets nothing.
        let mut ids = self.ids.clone();
        let (with_ids, gone) = ids.assign(&snap.entries);
        let stats = self.applier.apply(compile(&with_ids))?;
        self.ids = ids;
        let dp = self.applier.dataplane_mut();
        for p in &current {
            if !snap.allow.contains(p) {
                dp.del_allow(p)?;
            }
        }
        for id in gone {
            dp.forget_hits(id)?;
        }
        if let Some(path) = &self.ids_path {
            self.ids.save(path)?;
        }
        let mut by_kind = std::collections::BTreeMap::new();
        for e in &snap.entries {
            *by_kind.entry((e.prefix.family(), e.action)).or_insert(0) += 1;
        }
        Ok(SyncReport {
            stats,
            entries: snap.entries.len(),
            by_kind: by_kind.into_iter().collect(),
            allow: snap.allow.len(),
            rejected: snap.rejected.len(),
        })
    }

    pub fn ids(&self) -> &Ids {
        &self.ids
    }
}
