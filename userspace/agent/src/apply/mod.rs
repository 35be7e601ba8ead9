//! Keeps the kernel's active rule set equal to a compiled table.
//!
//! Two ways to get there:
//! - reload: write the whole table into the inactive set, then flip
//!   `Config::active_set`. Packets see the old set or the new one, never a mix.
//! - in place: write only the slots that differ into the active set, ordered so
//!   that a slot never points at port rules that are not there yet. Used for small
//!   changes (a single entry touches a handful of slots), so they need no reload.
//!
//! If writing fails half-way, the applier restores what packets were seeing
//! before, so a failed apply leaves the previous list enforced.
//!
//! Each set has maps of its own, created by the reload that fills it at the
//! size its table needs (`sizing`); the set that is not in use is given
//! empty minimal maps. In-place changes that outgrow the active set's maps
//! take a reload instead, which is how the maps grow and shrink.

mod diff;
mod in_place;
mod reload;

use in_place::InPlace;

use std::time::{Duration, Instant};

use c2wall_common::*;

use c2wall_model::Family;

use crate::compile::{filter_blocks, Compiled, Patch, PortSlot};
use crate::dataplane::{Dataplane, SetSize};
use crate::error::AgentError;
use crate::fastmap::FastMap;
use crate::ops::{level_counts, levels_of, LevelCounts, NodeOp, Ops};

/// Changes up to this many slot writes go in place; more use a full reload.
pub const IN_PLACE_LIMIT: usize = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub reload: bool,
    pub writes: usize,
    pub deletes: usize,
    pub elapsed: Duration,
}

/// A lineage as the kernel records it: 16 bytes, zeros for none.
pub fn lineage16(l: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = l.len().min(16);
    out[..n].copy_from_slice(&l[..n]);
    out
}

pub struct Applier<D: Dataplane> {
    dp: D,
    cfg: Config,
    /// The active set's port rules. Its node slots are not copied here: a
    /// million of them cost over 100 MiB as a hash map, and the dataplane
    /// already holds them compactly ([`Dataplane::node`] reads one back).
    ports: FastMap<PortSlot, PortValue>,
    /// The active set's level bitmaps (IPv4, IPv6).
    levels: (u32, u32),
    /// Slots per (family, level) in the active set, to keep the level bitmaps
    /// right when a patch empties or fills a level.
    level_counts: LevelCounts,
    /// The active set's maps could not be read at adoption: what it holds is
    /// unknown, so the next change must be a full reload.
    stale: bool,
}

impl<D: Dataplane> Applier<D> {
    /// Takes over maps that may already hold state (pinned by an earlier agent):
    /// reads the active set back and drops leftovers of an interrupted
    /// reload by giving the inactive set empty maps.
    pub fn adopt(mut dp: D) -> Result<Self, AgentError> {
        let cfg = dp.read_config()?;
        let active = (cfg.active_set & 1) as u8;
        let dump = dp.dump()?;
        // Read whole once, for the filter and the level counts; only the
        // port rules are kept.
        let mut enforced = Compiled {
            v4_levels: cfg.v4_levels[active as usize],
            v6_levels: cfg.v6_levels[active as usize],
            ..Default::default()
        };
        enforced.nodes = dump
            .nodes
            .into_iter()
            .filter(|(set, _, _)| *set == active)
            .map(|(_, slot, v)| (slot, v))
            .collect();
        for (set, slot, v) in dump.ports {
            if set == active {
                enforced.ports.insert(slot, v);
            }
        }
        dp.reset_set(1 - active, SetSize::EMPTY)?;
        let stale = !dp.readable(active);
        if stale {
            tracing::warn!(
                set = active,
                "the enforced rule set cannot be read back; it stays enforced until the next full sync replaces it"
            );
        }
        // Make sure the active set's filter covers every active slot; extra bits
        // left by an earlier agent only cost a probe.
        let filter = filter_blocks(&enforced, cfg.filter_bits[active as usize]);
        if !stale {
            for (idx, b) in &filter {
                dp.put_filter(active, *idx, b)?;
            }
        }
        Ok(Applier {
            dp,
            cfg,
            level_counts: level_counts(&enforced),
            levels: (enforced.v4_levels, enforced.v6_levels),
            ports: enforced.ports,
            stale,
        })
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }
    pub fn dataplane_mut(&mut self) -> &mut D {
        &mut self.dp
    }
    /// Slots in the active set: IPv4 nodes, IPv6 nodes, port rules.
    pub fn slot_counts(&self) -> (usize, usize, usize) {
        (
            self.nodes_of(Family::V4),
            self.nodes_of(Family::V6),
            self.ports.len(),
        )
    }

    /// Node slots of family `f` in the active set, from the level counts.
    fn nodes_of(&self, f: Family) -> usize {
        self.level_counts
            .iter()
            .filter(|((fam, _), _)| *fam == f)
            .map(|(_, n)| *n)
            .sum()
    }

    fn active_set(&self) -> u8 {
        (self.cfg.active_set & 1) as u8
    }

    /// The active set as a whole table, read back from the dataplane: for
    /// the rare change that turns into a reload of what is enforced plus
    /// the change.
    pub fn enforced(&self) -> Result<Compiled, AgentError> {
        Ok(Compiled {
            nodes: self.dp.set_nodes(self.active_set())?,
            ports: self.ports.clone(),
            v4_levels: self.levels.0,
            v6_levels: self.levels.1,
        })
    }
    pub fn mode(&self) -> u32 {
        self.cfg.mode
    }

    pub fn set_mode(&mut self, mode: u32) -> Result<(), AgentError> {
        self.update_config(|c| c.mode = mode)
    }

    /// Changes the config with `f` and writes it, only if that changed it.
    fn update_config(&mut self, f: impl FnOnce(&mut Config)) -> Result<(), AgentError> {
        let mut c = self.cfg;
        f(&mut c);
        if c != self.cfg {
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        Ok(())
    }

    /// The coordinator version (and its lineage) the maps hold, as recorded
    /// by the last apply: survives agent restarts with the pinned maps.
    pub fn synced(&self) -> (u64, [u8; 16]) {
        (self.cfg.synced_version, self.cfg.synced_lineage)
    }

    /// Records the coordinator version the maps now hold.
    pub fn set_synced(&mut self, version: u64, lineage: &[u8]) -> Result<(), AgentError> {
        let l = lineage16(lineage);
        self.update_config(|c| {
            c.synced_version = version;
            c.synced_lineage = l;
        })
    }

    /// Which allowlists (`ALLOW_HAS_V4` | `ALLOW_HAS_V6`) the program
    /// consults. Set a family before its first prefix goes in, clear it
    /// after its last one is gone: a skipped non-empty allowlist would drop
    /// protected traffic, a consulted empty one only costs a lookup.
    pub fn set_allow(&mut self, families: u8) -> Result<(), AgentError> {
        self.update_config(|c| c.allow = families)
    }

    /// Whether the program looks at DNS responses (c2wall_common::FOLLOW_DNS).
    pub fn set_follow(&mut self, follow: u8) -> Result<(), AgentError> {
        self.update_config(|c| c.follow = follow)
    }

    /// Sampled drop events per CPU per second (0: none).
    pub fn set_sample_budget(&mut self, budget: u32) -> Result<(), AgentError> {
        let window = jiffies_per_second();
        self.update_config(|c| {
            c.sample_budget = budget;
            c.sample_window = window;
        })
    }

    /// Makes the active set equal to `new`, in place when the change is small.
    pub fn apply(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        if self.stale {
            return self.reload(new);
        }
        // A change larger than an in-place one is a reload: the diff stops
        // there instead of listing a million slots.
        let Some(ops) = self.diff(&new, IN_PLACE_LIMIT)? else {
            return self.reload(new);
        };
        if ops.is_empty() && self.levels_match(&new) {
            return Ok(ApplyStats {
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        if !self.fits_in_place(&ops)? {
            return self.reload(new);
        }
        let (writes, deletes) =
            match self.in_place_or_restore(&ops, (new.v4_levels, new.v6_levels))? {
                InPlace::Done(w, d) => (w, d),
                InPlace::Reloaded(stats) => return Ok(stats),
            };
        self.level_counts = level_counts(&new);
        self.levels = (new.v4_levels, new.v6_levels);
        self.ports = new.ports;
        Ok(ApplyStats {
            reload: false,
            writes,
            deletes,
            elapsed: start.elapsed(),
        })
    }

    /// Applies a compiler patch: the slots it names that differ from the
    /// active set are written in place (or, if there are many, the patched
    /// table is reloaded). Cost follows the size of the patch, not of the list.
    pub fn apply_patch(&mut self, patch: &Patch) -> Result<ApplyStats, AgentError> {
        if self.stale {
            // What the active set holds is unknown: a patch has nothing to
            // apply to.
            return Err(AgentError::DeltaBeforeFullSync);
        }
        let start = Instant::now();
        let set = self.active_set();
        let mut ops = Ops::default();
        let mut counts = self.level_counts.clone();
        for (k, v) in &patch.nodes {
            let old = self.dp.node(set, k)?;
            if old != *v {
                ops.nodes.push(NodeOp {
                    slot: *k,
                    new: *v,
                    was: old,
                });
                let key = (k.family, k.level);
                match (old.is_some(), v.is_some()) {
                    (false, true) => *counts.entry(key).or_default() += 1,
                    (true, false) => *counts.entry(key).or_default() -= 1,
                    _ => {}
                }
            }
        }
        for (k, v) in &patch.ports {
            if self.ports.get(k) != v.as_ref() {
                ops.ports.push((*k, *v));
            }
        }
        if ops.is_empty() {
            return Ok(ApplyStats {
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        let levels = levels_of(&counts);
        if ops.len() > IN_PLACE_LIMIT || !self.fits_in_place(&ops)? {
            let mut new = self.enforced()?;
            ops.apply_to(&mut new);
            (new.v4_levels, new.v6_levels) = levels;
            return self.reload(new);
        }
        let (writes, deletes) = match self.in_place_or_restore(&ops, levels)? {
            InPlace::Done(w, d) => (w, d),
            InPlace::Reloaded(stats) => return Ok(stats),
        };
        for (k, v) in &ops.ports {
            match v {
                Some(v) => self.ports.insert(*k, *v),
                None => self.ports.remove(k),
            };
        }
        self.levels = levels;
        counts.retain(|_, n| *n > 0);
        self.level_counts = counts;
        Ok(ApplyStats {
            reload: false,
            writes,
            deletes,
            elapsed: start.elapsed(),
        })
    }
}

/// The kernel's HZ, from the resolution of the coarse clock (one tick), for
/// the program's sampling window; 0 (the program's default) if unknown.
fn jiffies_per_second() -> u32 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes the timespec it is given.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    if rc != 0 || res.tv_sec != 0 || res.tv_nsec <= 0 {
        return 0;
    }
    ((1_000_000_000 + res.tv_nsec / 2) / res.tv_nsec) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sampling_window_is_the_kernels_tick_rate() {
        // Linux's HZ is one of these; a wrong reading would stretch or shrink
        // the per-second sampling budget.
        let hz = super::jiffies_per_second();
        assert!([100, 250, 300, 1000].contains(&hz), "HZ {hz}");
    }
}
