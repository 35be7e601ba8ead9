//! Small changes written straight into the active set.

use std::collections::{btree_map::Entry, BTreeMap};

use c2wall_common::FilterBlock;
use c2wall_model::Family;

use super::{Applier, ApplyStats};
use crate::compile::filter_mark;
use crate::dataplane::{Dataplane, SetSize};
use crate::error::AgentError;
use crate::ops::Ops;
use crate::sizing::{check_limits, fits_set};

/// How an in-place change ended.
pub(super) enum InPlace {
    /// Written in place: (writes, deletes).
    Done(usize, usize),
    /// The active set had no room for it: the whole new table was reloaded.
    Reloaded(ApplyStats),
}

impl<D: Dataplane> Applier<D> {
    pub(super) fn in_place_or_restore(
        &mut self,
        ops: &Ops,
        levels: (u32, u32),
    ) -> Result<InPlace, AgentError> {
        match self.in_place(ops, levels) {
            Ok((writes, deletes)) => Ok(InPlace::Done(writes, deletes)),
            Err(AgentError::SetFull(what)) => {
                // Part of the change may be in the active set; the reload
                // (into the other set) enforces all of it at once.
                tracing::info!(what, "no room in place; reloading into new tables");
                let mut new = self.enforced()?;
                ops.apply_to(&mut new);
                (new.v4_levels, new.v6_levels) = levels;
                self.reload(new).map(InPlace::Reloaded)
            }
            Err(e) => {
                // Part of the change is in the active set. A reload of the
                // previous table (what it holds, the change undone) into the
                // other set restores exactly what was enforced.
                tracing::error!(error = %e, "in-place update failed; restoring the previous list");
                let restored = self.enforced().and_then(|mut previous| {
                    ops.undo_nodes().apply_to(&mut previous);
                    self.reload(previous)
                });
                if let Err(e) = restored {
                    tracing::error!(error = %e, "restoring the previous list failed");
                }
                Err(e)
            }
        }
    }

    /// Writes `ops` into the active set in an order that never exposes a
    /// slot pointing at port rules that are not there yet.
    fn in_place(&mut self, ops: &Ops, levels: (u32, u32)) -> Result<(usize, usize), AgentError> {
        let set = (self.cfg.active_set & 1) as u8;
        let bits = self.cfg.filter_bits[set as usize];
        let (mut writes, mut deletes) = (0, 0);
        // Filter bits before the slots they admit (never cleared in place).
        // The blocks are read from the set (no copy of a filter of a quarter
        // million blocks is kept), changed, written back.
        let mut blocks: BTreeMap<u32, (FilterBlock, bool)> = BTreeMap::new();
        for o in ops.nodes.iter().filter(|o| o.new.is_some()) {
            if let Some((idx, mark)) = filter_mark(&o.slot, bits) {
                let (cur, grown) = match blocks.entry(idx) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert((self.dp.filter_block(set, idx)?, false)),
                };
                if !cur.has(mark) {
                    cur.set(mark);
                    *grown = true;
                }
            }
        }
        for (idx, (b, _)) in blocks.iter().filter(|(_, (_, grown))| *grown) {
            self.dp.put_filter(set, *idx, b)?;
            writes += 1;
        }
        // Port rules before the nodes that point at them.
        for (k, v) in &ops.ports {
            if let Some(v) = v {
                self.dp.put_port(set, k, v)?;
                writes += 1;
            }
        }
        for o in &ops.nodes {
            if let Some(v) = &o.new {
                self.dp.put_node(set, &o.slot, v)?;
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
        for o in &ops.nodes {
            if o.new.is_none() {
                self.dp.del_node(set, &o.slot)?;
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

    /// Whether `ops` fit the active set's maps (an in-place update peaks at
    /// the union of old and new slots: it adds before it deletes). False
    /// means a reload, which sizes new maps; beyond the configured limits is
    /// an error.
    pub(super) fn fits_in_place(&self, ops: &Ops) -> Result<bool, AgentError> {
        let (mut add4, mut add6, mut addp) = (0, 0, 0);
        for o in &ops.nodes {
            if o.new.is_some() && o.was.is_none() {
                match o.slot.family {
                    Family::V4 => add4 += 1,
                    Family::V6 => add6 += 1,
                }
            }
        }
        for (k, v) in &ops.ports {
            if v.is_some() && !self.ports.contains_key(k) {
                addp += 1;
            }
        }
        // From the per-level counts, not a walk of the table: a delta's cost
        // must follow the delta, not the list.
        let (old4, old6, oldp) = self.slot_counts();
        let peak = (old4 + add4, old6 + add6, oldp + addp);
        check_limits(peak, self.dp.capacity())?;
        let size = self.dp.set_size(self.active_set());
        // Empty minimal maps (a fresh agent's) are never filled in place:
        // the first list takes a reload, which sizes the maps for it.
        let grows = add4 + add6 + addp > 0;
        let fresh = grows && size == SetSize::EMPTY;
        Ok(!self.stale && !fresh && fits_set(peak, size))
    }
}
