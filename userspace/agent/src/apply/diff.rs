//! What a full table changes in the active set: the slot writes and
//! deletes an in-place apply would make, found without a copy of the set.

use c2wall_model::Family;

use super::Applier;
use crate::compile::Compiled;
use crate::dataplane::Dataplane;
use crate::error::AgentError;
use crate::ops::{NodeOp, Ops};

impl<D: Dataplane> Applier<D> {
    pub(super) fn levels_match(&self, new: &Compiled) -> bool {
        (new.v4_levels, new.v6_levels) == self.levels
    }

    /// The slot writes and deletes that take the active set to `new`, or
    /// None when there are more than `limit`.
    pub(super) fn diff(&self, new: &Compiled, limit: usize) -> Result<Option<Ops>, AgentError> {
        let set = self.active_set();
        let old_nodes = self.nodes_of(Family::V4) + self.nodes_of(Family::V6);
        let old_ports = &self.ports;
        // Sizes alone can show the change is too large.
        if new.nodes.len().abs_diff(old_nodes) + new.ports.len().abs_diff(old_ports.len()) > limit {
            return Ok(None);
        }
        let mut ops = Ops::default();
        let over = |ops: &Ops| ops.len() > limit;
        // Old slots that `new` also has; if that is all of them, none goes.
        let mut kept = 0;
        for (k, v) in &new.nodes {
            let old = self.dp.node(set, k)?;
            kept += old.is_some() as usize;
            if old.as_ref() != Some(v) {
                ops.nodes.push(NodeOp {
                    slot: *k,
                    new: Some(*v),
                    was: old,
                });
                if over(&ops) {
                    return Ok(None);
                }
            }
        }
        if kept < old_nodes {
            for (k, v) in &self.dp.set_nodes(set)? {
                if !new.nodes.contains_key(k) {
                    ops.nodes.push(NodeOp {
                        slot: *k,
                        new: None,
                        was: Some(*v),
                    });
                    if over(&ops) {
                        return Ok(None);
                    }
                }
            }
        }
        for (k, v) in &new.ports {
            if old_ports.get(k) != Some(v) {
                ops.ports.push((*k, Some(*v)));
                if over(&ops) {
                    return Ok(None);
                }
            }
        }
        for k in old_ports.keys() {
            if !new.ports.contains_key(k) {
                ops.ports.push((*k, None));
                if over(&ops) {
                    return Ok(None);
                }
            }
        }
        Ok(Some(ops))
    }
}
