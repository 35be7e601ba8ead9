//! What the applier writes: slot operations, the level bitmaps they imply,
//! and filter blocks.

use std::collections::HashMap;

use c2wall_common::*;
use c2wall_model::Family;

use crate::compile::{stride, Compiled, NodeSlot, PortSlot};
use crate::dataplane::Dataplane;
use crate::error::AgentError;

pub(crate) type Filter = HashMap<u32, FilterBlock>;

/// Slot writes (Some) and deletes (None) for the active set.
#[derive(Default)]
pub(crate) struct Ops {
    pub nodes: Vec<(NodeSlot, Option<NodeValue>)>,
    pub ports: Vec<(PortSlot, Option<PortValue>)>,
}

impl Ops {
    pub fn len(&self) -> usize {
        self.nodes.len() + self.ports.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn apply_to(&self, c: &mut Compiled) {
        for (k, v) in &self.nodes {
            match v {
                Some(v) => c.nodes.insert(*k, *v),
                None => c.nodes.remove(k),
            };
        }
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
    let mut out = LevelCounts::new();
    for k in c.nodes.keys() {
        *out.entry((k.family, k.level)).or_default() += 1;
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

/// Writes the filter of `set` so that it equals `new`: only the blocks that
/// differ from `old`, or every block of the set when `old` is unknown.
pub(crate) fn write_filter<D: Dataplane>(
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
