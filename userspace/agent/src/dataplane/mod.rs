//! The one interface through which the agent writes kernel state.
//!
//! Everything upstream (sources, compiler, applier, metrics) talks to this trait,
//! so it runs in tests against [`MemDataplane`] without root; the real
//! implementation is [`crate::kernel::KernelMaps`].

use std::collections::HashMap;

use c2wall_common::*;
use c2wall_model::Prefix;

use crate::compile::{NodeSlot, Nodes, PortSlot};
use crate::error::AgentError;
use crate::fastmap::FastMap;

mod mem;
pub use mem::MemDataplane;

/// After a rule set stops being the active one, or a map is swapped out,
/// packets that read the old one may still be in the program for a few
/// microseconds; wait well past that before reusing or freeing it.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// The capacities one rule set's maps were created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetSize {
    pub nodes_v4: u32,
    pub nodes_v6: u32,
    pub ports: u32,
    /// The filter has `1 << filter_bits` blocks (0: no filter, every level
    /// in use is probed).
    pub filter_bits: u8,
}

impl SetSize {
    /// What a set that holds nothing is given: the smallest maps the kernel
    /// creates, so the set that is not in use costs next to nothing.
    pub const EMPTY: SetSize = SetSize {
        nodes_v4: 1,
        nodes_v6: 1,
        ports: 1,
        filter_bits: 0,
    };
}

/// Reads the kernel counters: per interface (its name, or `other` for
/// interfaces without a counter slot), indexed as in c2wall_common::counters.
pub type CounterReader =
    std::sync::Arc<dyn Fn() -> Result<Vec<(String, Vec<u64>)>, AgentError> + Send + Sync>;

pub trait Dataplane {
    fn read_config(&self) -> Result<Config, AgentError>;
    fn write_config(&mut self, cfg: &Config) -> Result<(), AgentError>;
    fn put_node(&mut self, set: u8, slot: &NodeSlot, v: &NodeValue) -> Result<(), AgentError>;
    fn del_node(&mut self, set: u8, slot: &NodeSlot) -> Result<(), AgentError>;
    /// Node slot `slot` of rule set `set` as it was written (rules without
    /// their counter slots, as [`Dataplane::dump`] reads them); None if the
    /// set does not hold it. The applier keeps no copy of the node slots:
    /// it asks here.
    fn node(&self, set: u8, slot: &NodeSlot) -> Result<Option<NodeValue>, AgentError>;
    /// Every node slot of rule set `set`, as [`Dataplane::node`] reads them.
    fn set_nodes(&self, set: u8) -> Result<Nodes, AgentError> {
        Ok(self
            .dump()?
            .nodes
            .into_iter()
            .filter(|(s, _, _)| *s == set)
            .map(|(_, k, v)| (k, v))
            .collect())
    }
    fn put_port(&mut self, set: u8, slot: &PortSlot, v: &PortValue) -> Result<(), AgentError>;
    fn del_port(&mut self, set: u8, slot: &PortSlot) -> Result<(), AgentError>;
    /// Writes a whole table into `set` (a reload's fill), port rules first;
    /// returns the number of writes. The same as one `put_port`/`put_node`
    /// each; the kernel writes the slot tables as memory and batches the
    /// port map.
    fn fill(
        &mut self,
        set: u8,
        nodes: &Nodes,
        ports: &FastMap<PortSlot, PortValue>,
    ) -> Result<usize, AgentError> {
        for (slot, v) in ports {
            self.put_port(set, slot, v)?;
        }
        for (slot, v) in nodes {
            self.put_node(set, slot, v)?;
        }
        Ok(nodes.len() + ports.len())
    }
    /// Everything in the rule maps, both sets (used once, to adopt pinned maps).
    fn dump(&self) -> Result<Dump, AgentError>;
    fn allowlist(&self) -> Result<Vec<Prefix>, AgentError>;
    fn put_allow(&mut self, p: &Prefix) -> Result<(), AgentError>;
    fn del_allow(&mut self, p: &Prefix) -> Result<(), AgentError>;
    /// Counter values summed over CPUs and interfaces, indexed as in
    /// c2wall_common::counters.
    fn counters(&self) -> Result<Vec<u64>, AgentError>;
    /// The same per interface slot (slot 0: interfaces without one).
    fn counters_by_slot(&self) -> Result<Vec<Vec<u64>>, AgentError>;
    /// The counter slot of an interface (0: none yet).
    fn iface_slot(&self, ifindex: u32) -> Result<u32, AgentError>;
    /// Slots already given to interfaces.
    fn iface_slots_used(&self) -> Result<Vec<u32>, AgentError>;
    fn set_iface_slot(&mut self, ifindex: u32, slot: u32) -> Result<(), AgentError>;
    /// Per-entry hits summed over CPUs.
    fn hits(&self) -> Result<HashMap<u32, u64>, AgentError>;
    fn forget_hits(&mut self, id: u32) -> Result<(), AgentError>;
    /// Gives the entries `ids` the per-entry state they will need before
    /// their rules are written (the kernel: counter slots), so a full sync
    /// can do it while it compiles.
    fn prepare_counters(&mut self, _ids: &[u32]) -> Result<(), AgentError> {
        Ok(())
    }
    /// After an apply (and the hits of entries that went away forgotten):
    /// finish deferred work and give memory back.
    fn tidy(&mut self) -> Result<(), AgentError> {
        Ok(())
    }
    /// Block `index` of rule set `set`'s slot filter (all zeros if the set
    /// has no such block).
    fn filter_block(&self, set: u8, index: u32) -> Result<FilterBlock, AgentError>;
    /// Writes one block of rule set `set`'s slot filter.
    fn put_filter(&mut self, set: u8, index: u32, block: &FilterBlock) -> Result<(), AgentError>;
    /// Writes many blocks of a set packets do not read yet (a reload's
    /// filter); returns how many. The kernel writes them as memory.
    fn put_filters(
        &mut self,
        set: u8,
        blocks: &FastMap<u32, FilterBlock>,
    ) -> Result<usize, AgentError> {
        for (idx, b) in blocks {
            self.put_filter(set, *idx, b)?;
        }
        Ok(blocks.len())
    }
    /// Replaces rule set `set`'s maps with new, empty ones of `size`: what it
    /// held is gone. Only for the set packets do not read.
    fn reset_set(&mut self, set: u8, size: SetSize) -> Result<(), AgentError>;
    /// The capacities rule set `set`'s maps have now.
    fn set_size(&self, set: u8) -> SetSize;
    /// Upper limits of a set's capacities, from the configuration (v4 nodes,
    /// v6 nodes, ports).
    fn capacity(&self) -> (usize, usize, usize);
    /// Whether rule set `set`'s maps can be read (false only after a crash
    /// left their pins behind the maps the program reads; a reload replaces
    /// them).
    fn readable(&self, _set: u8) -> bool {
        true
    }
    /// The DNS names the program follows: key -> DNS_NAME_* bits.
    fn names(&self) -> Result<HashMap<u64, u32>, AgentError>;
    fn put_name(&mut self, key: u64, flags: u32) -> Result<(), AgentError>;
    fn del_name(&mut self, key: u64) -> Result<(), AgentError>;
    /// The name filter's non-zero words (c2wall_common::filter_bit).
    fn name_filter(&self) -> Result<HashMap<u32, u64>, AgentError>;
    fn put_name_filter(&mut self, word: u32, value: u64) -> Result<(), AgentError>;
}

/// The counter slot of interface `ifindex`: the one it already has (kept in
/// the pinned map across restarts), else the first free one. None when all
/// slots are taken (its packets then count under slot 0, `other`).
pub fn assign_iface_slot<D: Dataplane>(
    dp: &mut D,
    ifindex: u32,
) -> Result<Option<u32>, AgentError> {
    let current = dp.iface_slot(ifindex)?;
    if current != 0 {
        return Ok(Some(current));
    }
    let used = dp.iface_slots_used()?;
    match (1..IFACE_SLOTS).find(|s| !used.contains(s)) {
        Some(slot) => {
            dp.set_iface_slot(ifindex, slot)?;
            Ok(Some(slot))
        }
        None => Ok(None),
    }
}

/// What [`Dataplane::dump`] reads: every slot of both sets, by set.
#[derive(Default, Debug)]
pub struct Dump {
    pub nodes: Vec<(u8, NodeSlot, NodeValue)>,
    pub ports: Vec<(u8, PortSlot, PortValue)>,
}

impl Default for SetSize {
    fn default() -> Self {
        SetSize::EMPTY
    }
}
