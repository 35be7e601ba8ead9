//! What the applier writes: slot operations and the level bitmaps they imply.

use std::collections::HashMap;

use c2wall_common::*;
use c2wall_model::Family;

use crate::compile::{stride, Compiled, NodeSlot, PortSlot};

/// Slot writes (Some) and deletes (None) for the active set.
#[derive(Default)]
pub(crate) struct Ops {
    pub nodes: Vec<NodeOp>,
    pub ports: Vec<(PortSlot, Option<PortValue>)>,
}

/// One node slot's change, with what the set held there before: read once
/// by whoever found the change, so fitting and undoing it read nothing more.
#[derive(Clone, Copy)]
pub(crate) struct NodeOp {
    pub slot: NodeSlot,
    pub new: Option<NodeValue>,
    pub was: Option<NodeValue>,
}

impl Ops {
    pub fn len(&self) -> usize {
        self.nodes.len() + self.ports.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The node changes reversed (last first): applied after them, they
    /// restore the slots. Port rules are not covered: the applier keeps
    /// their old values itself.
    pub fn undo_nodes(&self) -> Ops {
        Ops {
            nodes: self
                .nodes
                .iter()
                .rev()
                .map(|o| NodeOp {
                    slot: o.slot,
                    new: o.was,
                    was: o.new,
                })
                .collect(),
            ports: Vec::new(),
        }
    }
    pub fn apply_to(&self, c: &mut Compiled) {
        c.nodes = c.nodes.patched(self.nodes.iter().map(|o| (o.slot, o.new)));
        for (k, v) in &self.ports {
            match v {
                Some(v) => c.ports.insert(*k, *v),
                None => c.ports.remove(k),
            };
        }
    }
}

pub(crate) type LevelCounts = HashMap<(Family, u8), usize>;

pub(crate) fn level_counts(c: &Compiled) -> LevelCounts {
    // Counted in an array (a million slots, few levels), then keyed.
    let mut counts = [[0usize; 129]; 2];
    for k in c.nodes.keys() {
        counts[(k.family == Family::V6) as usize][k.level as usize] += 1;
    }
    let mut out = LevelCounts::new();
    for (f, family) in [Family::V4, Family::V6].into_iter().enumerate() {
        for (level, n) in counts[f].iter().enumerate() {
            if *n > 0 {
                out.insert((family, level as u8), *n);
            }
        }
    }
    out
}

/// The level bitmaps (IPv4, IPv6) of the levels that have slots.
pub(crate) fn levels_of(counts: &LevelCounts) -> (u32, u32) {
    let (mut v4, mut v6) = (0, 0);
    for (&(f, level), &n) in counts {
        if n > 0 {
            let bit = 1u32 << (level / stride(f));
            match f {
                Family::V4 => v4 |= bit,
                Family::V6 => v6 |= bit,
            }
        }
    }
    (v4, v6)
}
