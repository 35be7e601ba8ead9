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

use std::collections::HashMap;

use crate::compile::{filter_blocks, Compiled};
use crate::dataplane::Dataplane;
use crate::error::AgentError;

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

type Filter = HashMap<u32, FilterBlock>;

pub struct Applier<D: Dataplane> {
    dp: D,
    cfg: Config,
    /// What the active set holds.
    shadow: Compiled,
    /// Per set: the filter blocks in the kernel (non-empty ones), or None when
    /// unknown (maps adopted from an earlier agent), which forces a full rewrite.
    filters: [Option<Filter>; 2],
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

    /// Makes the active set equal to `new`, in place when the change is small.
    pub fn apply(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        let ops = self.diff_size(&new);
        if ops == 0 && self.levels_match(&new) {
            return Ok(ApplyStats {
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        if ops > IN_PLACE_LIMIT {
            return self.reload(new);
        }
        self.check_capacity(&new, false)?;
        match self.in_place(&new) {
            Ok((writes, deletes)) => {
                self.shadow = new;
                Ok(ApplyStats {
                    reload: false,
                    writes,
                    deletes,
                    elapsed: start.elapsed(),
                })
            }
            Err(e) => {
                // Part of the diff is in the active set. A reload of the previous
                // table (into the other set) restores exactly what was enforced.
                tracing::error!(error = %e, "in-place update failed; restoring the previous list");
                let previous = self.shadow.clone();
                self.reload(previous)?;
                Err(e)
            }
        }
    }

    /// Full reload into the inactive set and an atomic flip.
    pub fn reload(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        self.check_capacity(&new, true)?;
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

    fn diff_size(&self, new: &Compiled) -> usize {
        let old = &self.shadow;
        let changed_nodes = new
            .nodes
            .iter()
            .filter(|(k, v)| old.nodes.get(k) != Some(v))
            .count();
        let changed_ports = new
            .ports
            .iter()
            .filter(|(k, v)| old.ports.get(k) != Some(v))
            .count();
        let gone_nodes = old
            .nodes
            .keys()
            .filter(|k| !new.nodes.contains_key(k))
            .count();
        let gone_ports = old
            .ports
            .keys()
            .filter(|k| !new.ports.contains_key(k))
            .count();
        changed_nodes + changed_ports + gone_nodes + gone_ports
    }

    fn in_place(&mut self, new: &Compiled) -> Result<(usize, usize), AgentError> {
        let set = (self.cfg.active_set & 1) as u8;
        let (mut writes, mut deletes) = (0, 0);
        // Filter bits before the slots they admit (never cleared in place).
        let mut filter = self.filters[set as usize].take().unwrap_or_default();
        let mut grown = Vec::new();
        for (idx, b) in filter_blocks(new, set) {
            let cur = filter.entry(idx).or_default();
            let mut merged = *cur;
            for (w, nw) in merged.words.iter_mut().zip(b.words) {
                *w |= nw;
            }
            if merged != *cur {
                *cur = merged;
                grown.push((idx, merged));
            }
        }
        self.filters[set as usize] = Some(filter);
        for (idx, b) in &grown {
            self.dp.put_filter(*idx, b)?;
            writes += 1;
        }
        // Port rules before the nodes that point at them.
        for (k, v) in &new.ports {
            if self.shadow.ports.get(k) != Some(v) {
                self.dp.put_port(set, k, v)?;
                writes += 1;
            }
        }
        for (k, v) in &new.nodes {
            if self.shadow.nodes.get(k) != Some(v) {
                self.dp.put_node(set, k, v)?;
                writes += 1;
            }
        }
        // New levels become visible once their slots exist; levels that are
        // going away stay probed until their slots are gone (a probe that misses
        // costs time, never correctness).
        let mut c = self.cfg;
        c.v4_levels[set as usize] |= new.v4_levels;
        c.v6_levels[set as usize] |= new.v6_levels;
        if c != self.cfg {
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        for k in self.shadow.nodes.keys() {
            if !new.nodes.contains_key(k) {
                self.dp.del_node(set, k)?;
                deletes += 1;
            }
        }
        for k in self.shadow.ports.keys() {
            if !new.ports.contains_key(k) {
                self.dp.del_port(set, k)?;
                deletes += 1;
            }
        }
        c.v4_levels[set as usize] = new.v4_levels;
        c.v6_levels[set as usize] = new.v6_levels;
        if c != self.cfg {
            self.dp.write_config(&c)?;
            self.cfg = c;
        }
        Ok((writes, deletes))
    }

    /// A reload holds both sets at once; an in-place update peaks at the union
    /// of old and new slots (it adds before it deletes).
    fn check_capacity(&self, new: &Compiled, reload: bool) -> Result<(), AgentError> {
        let (cap4, cap6, capp) = self.dp.capacity();
        let (new4, new6, newp) = new.slot_counts();
        let (old4, old6, oldp) = if reload {
            self.shadow.slot_counts()
        } else {
            let gone = Compiled {
                nodes: self
                    .shadow
                    .nodes
                    .iter()
                    .filter(|(k, _)| !new.nodes.contains_key(k))
                    .map(|(k, v)| (*k, *v))
                    .collect(),
                ports: self
                    .shadow
                    .ports
                    .iter()
                    .filter(|(k, _)| !new.ports.contains_key(k))
                    .map(|(k, v)| (*k, *v))
                    .collect(),
                ..Default::default()
            };
            gone.slot_counts()
        };
        for (what, needed, capacity, setting) in [
            ("IPv4", new4 + old4, cap4, "capacity.nodes_v4"),
            ("IPv6", new6 + old6, cap6, "capacity.nodes_v6"),
            ("port", newp + oldp, capp, "capacity.ports"),
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

/// Writes the filter of `set` so that it equals `new`: only the blocks that
/// differ from `old`, or every block of the set when `old` is unknown.
fn write_filter<D: Dataplane>(
    dp: &mut D,
    set: u8,
    old: Option<&Filter>,
    new: &Filter,
) -> Result<usize, AgentError> {
    let zero = FilterBlock::default();
    let mut n = 0;
    match old {
        None => {
            let base = set as u32 * FILTER_BLOCKS_PER_SET;
            for idx in base..base + FILTER_BLOCKS_PER_SET {
                dp.put_filter(idx, new.get(&idx).unwrap_or(&zero))?;
                n += 1;
            }
        }
        Some(old) => {
            for (idx, b) in new {
                if old.get(idx) != Some(b) {
                    dp.put_filter(*idx, b)?;
                    n += 1;
                }
            }
            for idx in old.keys() {
                if !new.contains_key(idx) {
                    dp.put_filter(*idx, &zero)?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}
