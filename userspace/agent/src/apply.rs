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

use std::time::{Duration, Instant};

use c2wall_common::*;
use c2wall_model::Family;

use crate::compile::{filter_bit, filter_blocks, Compiled, Patch};
use crate::dataplane::Dataplane;
use crate::error::AgentError;
use crate::ops::{level_counts, levels_of, write_filter, Filter, LevelCounts, Ops};

/// Changes up to this many slot writes go in place; more use a full reload.
pub const IN_PLACE_LIMIT: usize = 4096;

/// After a flip, packets that read the old `active_set` may still be in the
/// program for a few microseconds; wait well past that before clearing the old
/// set.
const FLIP_GRACE: Duration = Duration::from_millis(20);

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
    /// What the active set holds.
    shadow: Compiled,
    /// Per set: the filter blocks in the kernel (non-empty ones), or None when
    /// unknown (maps adopted from an earlier agent), which forces a full rewrite.
    filters: [Option<Filter>; 2],
    /// Slots per (family, level) in the active set, to keep the level bitmaps
    /// right when a patch empties or fills a level.
    level_counts: LevelCounts,
}

impl<D: Dataplane> Applier<D> {
    /// Takes over maps that may already hold state (pinned by an earlier agent):
    /// reads the active set as the shadow and clears leftovers of an interrupted
    /// reload from the inactive set.
    pub fn adopt(mut dp: D) -> Result<Self, AgentError> {
        let cfg = dp.read_config()?;
        let active = (cfg.active_set & 1) as u8;
        let dump = dp.dump()?;
        let mut shadow = Compiled {
            v4_levels: cfg.v4_levels[active as usize],
            v6_levels: cfg.v6_levels[active as usize],
            ..Default::default()
        };
        for (set, slot, v) in dump.nodes {
            if set == active {
                shadow.nodes.insert(slot, v);
            } else {
                dp.del_node(set, &slot)?;
            }
        }
        for (set, slot, v) in dump.ports {
            if set == active {
                shadow.ports.insert(slot, v);
            } else {
                dp.del_port(set, &slot)?;
            }
        }
        // Make sure the active set's filter covers every active slot; extra bits
        // left by an earlier agent only cost a probe.
        let filter = filter_blocks(&shadow, active);
        for (idx, b) in &filter {
            dp.put_filter(*idx, b)?;
        }
        let mut filters = [None, None];
        filters[active as usize] = Some(filter);
        Ok(Applier {
            dp,
            cfg,
            level_counts: level_counts(&shadow),
            shadow,
            filters,
        })
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }
    pub fn dataplane_mut(&mut self) -> &mut D {
        &mut self.dp
    }
    pub fn active(&self) -> &Compiled {
        &self.shadow
    }
    pub fn mode(&self) -> u32 {
        self.cfg.mode
    }

    pub fn set_mode(&mut self, mode: u32) -> Result<(), AgentError> {
        if self.cfg.mode != mode {
            let mut c = self.cfg;
            c.mode = mode;
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
        if (self.cfg.synced_version, self.cfg.synced_lineage) != (version, l) {
            let mut c = self.cfg;
            c.synced_version = version;
            c.synced_lineage = l;
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        Ok(())
    }

    /// Sampled drop events per CPU per second (0: none).
    pub fn set_sample_budget(&mut self, budget: u32) -> Result<(), AgentError> {
        if self.cfg.sample_budget != budget {
            let mut c = self.cfg;
            c.sample_budget = budget;
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        Ok(())
    }

    /// Makes the active set equal to `new`, in place when the change is small.
    pub fn apply(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        let ops = self.diff(&new);
        if ops.is_empty() && self.levels_match(&new) {
            return Ok(ApplyStats {
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        if ops.len() > IN_PLACE_LIMIT {
            return self.reload(new);
        }
        self.check_capacity(&ops)?;
        let (writes, deletes) = self.in_place_or_restore(&ops, (new.v4_levels, new.v6_levels))?;
        self.level_counts = level_counts(&new);
        self.shadow = new;
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
        let start = Instant::now();
        let mut ops = Ops::default();
        for (k, v) in &patch.nodes {
            if self.shadow.nodes.get(k) != v.as_ref() {
                ops.nodes.push((*k, *v));
            }
        }
        for (k, v) in &patch.ports {
            if self.shadow.ports.get(k) != v.as_ref() {
                ops.ports.push((*k, *v));
            }
        }
        if ops.is_empty() {
            return Ok(ApplyStats {
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        let mut counts = self.level_counts.clone();
        for (k, v) in &ops.nodes {
            let key = (k.family, k.level);
            match (self.shadow.nodes.contains_key(k), v.is_some()) {
                (false, true) => *counts.entry(key).or_default() += 1,
                (true, false) => *counts.entry(key).or_default() -= 1,
                _ => {}
            }
        }
        let levels = levels_of(&counts);
        if ops.len() > IN_PLACE_LIMIT {
            let mut new = self.shadow.clone();
            ops.apply_to(&mut new);
            (new.v4_levels, new.v6_levels) = levels;
            return self.reload(new);
        }
        self.check_capacity(&ops)?;
        let (writes, deletes) = self.in_place_or_restore(&ops, levels)?;
        ops.apply_to(&mut self.shadow);
        (self.shadow.v4_levels, self.shadow.v6_levels) = levels;
        counts.retain(|_, n| *n > 0);
        self.level_counts = counts;
        Ok(ApplyStats {
            reload: false,
            writes,
            deletes,
            elapsed: start.elapsed(),
        })
    }

    fn in_place_or_restore(
        &mut self,
        ops: &Ops,
        levels: (u32, u32),
    ) -> Result<(usize, usize), AgentError> {
        self.in_place(ops, levels).inspect_err(|e| {
            // Part of the change is in the active set. A reload of the previous
            // table (into the other set) restores exactly what was enforced.
            tracing::error!(error = %e, "in-place update failed; restoring the previous list");
            let previous = self.shadow.clone();
            if let Err(e) = self.reload(previous) {
                tracing::error!(error = %e, "restoring the previous list failed");
            }
        })
    }

    /// Full reload into the inactive set and an atomic flip.
    pub fn reload(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        // Both sets are full at once until the old one is cleared.
        let (n4, n6, np) = new.slot_counts();
        let (o4, o6, op) = self.shadow.slot_counts();
        self.fits((n4 + o4, n6 + o6, np + op))?;
        let active = (self.cfg.active_set & 1) as u8;
        let next = 1 - active;
        let mut writes = 0;
        let filter = filter_blocks(&new, next);
        let old_filter = self.filters[next as usize].take();
        let written = (|| -> Result<(), AgentError> {
            writes += write_filter(&mut self.dp, next, old_filter.as_ref(), &filter)?;
            for (slot, v) in &new.ports {
                self.dp.put_port(next, slot, v)?;
                writes += 1;
            }
            for (slot, v) in &new.nodes {
                self.dp.put_node(next, slot, v)?;
                writes += 1;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // The active set was never touched; drop what we wrote. The inactive
            // filter is now partly written: unknown, so the next reload rewrites it.
            self.clear_set(next, &new);
            return Err(e);
        }
        self.filters[next as usize] = Some(filter);
        let mut c = self.cfg;
        c.v4_levels[next as usize] = new.v4_levels;
        c.v6_levels[next as usize] = new.v6_levels;
        self.dp.write_config(&c)?;
        c.active_set = next as u32;
        self.dp.write_config(&c)?;
        self.cfg = c;
        std::thread::sleep(FLIP_GRACE);
        self.level_counts = level_counts(&new);
        let old = std::mem::replace(&mut self.shadow, new);
        let deletes = old.nodes.len() + old.ports.len();
        self.clear_set(active, &old);
        Ok(ApplyStats {
            reload: true,
            writes,
            deletes,
            elapsed: start.elapsed(),
        })
    }

    fn clear_set(&mut self, set: u8, content: &Compiled) {
        for slot in content.nodes.keys() {
            if let Err(e) = self.dp.del_node(set, slot) {
                tracing::warn!(error = %e, "clearing inactive set");
            }
        }
        for slot in content.ports.keys() {
            if let Err(e) = self.dp.del_port(set, slot) {
                tracing::warn!(error = %e, "clearing inactive set");
            }
        }
    }

    fn levels_match(&self, new: &Compiled) -> bool {
        new.v4_levels == self.shadow.v4_levels && new.v6_levels == self.shadow.v6_levels
    }

    /// The slot writes and deletes that take the active set to `new`.
    fn diff(&self, new: &Compiled) -> Ops {
        let old = &self.shadow;
        let mut ops = Ops::default();
        for (k, v) in &new.nodes {
            if old.nodes.get(k) != Some(v) {
                ops.nodes.push((*k, Some(*v)));
            }
        }
        for k in old.nodes.keys() {
            if !new.nodes.contains_key(k) {
                ops.nodes.push((*k, None));
            }
        }
        for (k, v) in &new.ports {
            if old.ports.get(k) != Some(v) {
                ops.ports.push((*k, Some(*v)));
            }
        }
        for k in old.ports.keys() {
            if !new.ports.contains_key(k) {
                ops.ports.push((*k, None));
            }
        }
        ops
    }

    /// Writes `ops` into the active set in an order that never exposes a
    /// slot pointing at port rules that are not there yet.
    fn in_place(&mut self, ops: &Ops, levels: (u32, u32)) -> Result<(usize, usize), AgentError> {
        let set = (self.cfg.active_set & 1) as u8;
        let (mut writes, mut deletes) = (0, 0);
        // Filter bits before the slots they admit (never cleared in place).
        let mut filter = self.filters[set as usize].take().unwrap_or_default();
        let mut grown = Vec::new();
        for (slot, _) in ops.nodes.iter().filter(|(_, v)| v.is_some()) {
            if let Some((idx, bit)) = filter_bit(slot, set) {
                let cur = filter.entry(idx).or_default();
                if !cur.has(bit) {
                    cur.set(bit);
                    grown.push(idx);
                }
            }
        }
        grown.sort_unstable();
        grown.dedup();
        for idx in &grown {
            self.dp.put_filter(*idx, &filter[idx])?;
            writes += 1;
        }
        self.filters[set as usize] = Some(filter);
        // Port rules before the nodes that point at them.
        for (k, v) in &ops.ports {
            if let Some(v) = v {
                self.dp.put_port(set, k, v)?;
                writes += 1;
            }
        }
        for (k, v) in &ops.nodes {
            if let Some(v) = v {
                self.dp.put_node(set, k, v)?;
                writes += 1;
            }
        }
        // New levels become visible once their slots exist; levels that are
        // going away stay probed until their slots are gone (a probe that misses
        // costs time, never correctness).
        let mut c = self.cfg;
        c.v4_levels[set as usize] |= levels.0;
        c.v6_levels[set as usize] |= levels.1;
        if c != self.cfg {
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        for (k, v) in &ops.nodes {
            if v.is_none() {
                self.dp.del_node(set, k)?;
                deletes += 1;
            }
        }
        for (k, v) in &ops.ports {
            if v.is_none() {
                self.dp.del_port(set, k)?;
                deletes += 1;
            }
        }
        c.v4_levels[set as usize] = levels.0;
        c.v6_levels[set as usize] = levels.1;
        if c != self.cfg {
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        Ok((writes, deletes))
    }

    /// An in-place update peaks at the union of old and new slots (it adds
    /// before it deletes).
    fn check_capacity(&self, ops: &Ops) -> Result<(), AgentError> {
        let (mut add4, mut add6, mut addp) = (0, 0, 0);
        for (k, v) in &ops.nodes {
            if v.is_some() && !self.shadow.nodes.contains_key(k) {
                match k.family {
                    Family::V4 => add4 += 1,
                    Family::V6 => add6 += 1,
                }
            }
        }
        for (k, v) in &ops.ports {
            if v.is_some() && !self.shadow.ports.contains_key(k) {
                addp += 1;
            }
        }
        let (old4, old6, oldp) = self.shadow.slot_counts();
        self.fits((old4 + add4, old6 + add6, oldp + addp))
    }

    fn fits(&self, (n4, n6, np): (usize, usize, usize)) -> Result<(), AgentError> {
        let (cap4, cap6, capp) = self.dp.capacity();
        for (what, needed, capacity, setting) in [
            ("IPv4", n4, cap4, "capacity.nodes_v4"),
            ("IPv6", n6, cap6, "capacity.nodes_v6"),
            ("port", np, capp, "capacity.ports"),
        ] {
            if needed > capacity {
                return Err(AgentError::Capacity {
                    what,
                    needed,
                    capacity,
                    setting,
                });
            }
        }
        Ok(())
    }
}
