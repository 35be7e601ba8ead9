//! The inner maps behind the arrays of maps: one group per rule set and the
//! hit counters. Each is created at the size asked for and swapped into its
//! outer slot whole, so packets see the old map or the new one.

use aya::maps::{
    Array, ArrayOfMaps, HashMap as BpfHashMap, IterableMap, MapData, MapError, PerCpuHashMap,
    PerCpuValues,
};
use c2wall_common::*;

use crate::dataplane::{SetSize, GRACE};
use crate::error::AgentError;

const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_F_INNER_MAP: u32 = 1 << 12;

pub type NodesV4 = BpfHashMap<MapData, V4Key, NodeValue>;
pub type NodesV6 = BpfHashMap<MapData, V6Key, NodeValue>;
pub type Ports = BpfHashMap<MapData, PortKey, PortValue>;
pub type Filter = Array<MapData, FilterBlock>;
pub type Hits = PerCpuHashMap<MapData, u32, u64>;

/// The outer maps: index = rule set (hits: index 0).
pub struct Outer {
    pub nodes_v4: ArrayOfMaps<MapData, NodesV4>,
    pub nodes_v6: ArrayOfMaps<MapData, NodesV6>,
    pub ports: ArrayOfMaps<MapData, Ports>,
    pub filter: ArrayOfMaps<MapData, Filter>,
    pub hits: ArrayOfMaps<MapData, Hits>,
}

/// One rule set's inner maps and the capacities they were created with.
pub struct SetMaps {
    pub nodes_v4: NodesV4,
    pub nodes_v6: NodesV6,
    pub ports: Ports,
    pub filter: Filter,
    pub size: SetSize,
}

fn create_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
    move |source| AgentError::Map { map, source }
}

fn capacity<K: aya::Pod, V>(m: &impl IterableMap<K, V>) -> u32 {
    m.map().info().map(|i| i.max_entries()).unwrap_or(0)
}

impl SetMaps {
    pub fn create(size: SetSize) -> Result<SetMaps, AgentError> {
        let blocks = if size.filter_bits == 0 {
            1
        } else {
            1u32 << size.filter_bits
        };
        Ok(SetMaps {
            nodes_v4: NodesV4::create(size.nodes_v4, BPF_F_NO_PREALLOC)
                .map_err(create_err(MAP_NODES_V4))?,
            nodes_v6: NodesV6::create(size.nodes_v6, BPF_F_NO_PREALLOC)
                .map_err(create_err(MAP_NODES_V6))?,
            ports: Ports::create(size.ports, BPF_F_NO_PREALLOC).map_err(create_err(MAP_PORTS))?,
            filter: Filter::create(blocks, BPF_F_INNER_MAP).map_err(create_err(MAP_FILTER))?,
            size,
        })
    }

    /// The maps in rule set `set`'s outer slots, or None if a slot is empty
    /// (maps just created).
    pub fn read(outer: &Outer, set: u32, filter_bits: u8) -> Option<SetMaps> {
        let nodes_v4 = outer.nodes_v4.get(&set, 0).ok()?;
        let nodes_v6 = outer.nodes_v6.get(&set, 0).ok()?;
        let ports = outer.ports.get(&set, 0).ok()?;
        let filter = outer.filter.get(&set, 0).ok()?;
        let size = SetSize {
            nodes_v4: capacity(&nodes_v4),
            nodes_v6: capacity(&nodes_v6),
            ports: capacity(&ports),
            filter_bits: if capacity(&filter) >= 1 << filter_bits {
                filter_bits
            } else {
                0
            },
        };
        Some(SetMaps {
            nodes_v4,
            nodes_v6,
            ports,
            filter,
            size,
        })
    }

    /// Puts these maps in rule set `set`'s outer slots.
    pub fn install(&self, outer: &mut Outer, set: u32) -> Result<(), AgentError> {
        let put = |map| {
            move |source| AgentError::Map { map, source }
        };
        outer
            .filter
            .set(set, &self.filter, 0)
            .map_err(put(MAP_FILTER))?;
        outer.ports.set(set, &self.ports, 0).map_err(put(MAP_PORTS))?;
        outer
            .nodes_v4
            .set(set, &self.nodes_v4, 0)
            .map_err(put(MAP_NODES_V4))?;
        outer
            .nodes_v6
            .set(set, &self.nodes_v6, 0)
            .map_err(put(MAP_NODES_V6))
    }
}

/// The hit-counter map in the outer slot, or a new one of `capacity`
/// installed there.
pub fn read_or_create_hits(outer: &mut Outer, capacity: u32) -> Result<Hits, AgentError> {
    if let Ok(h) = outer.hits.get(&0, 0) {
        return Ok(h);
    }
    let h = Hits::create(capacity, BPF_F_NO_PREALLOC).map_err(create_err(MAP_HITS))?;
    outer
        .hits
        .set(0, &h, 0)
        .map_err(create_err(MAP_HITS))?;
    Ok(h)
}

pub fn hits_capacity(h: &Hits) -> u32 {
    capacity(h)
}

/// Moves the counts of `old` into a new map of `capacity` and swaps it in.
/// Counts are copied, the new map installed, and once no packet can still
/// be counting into `old`, what it gained meanwhile is added: only an
/// increment landing on the same entry in the instant of that last write
/// can be lost.
pub fn resize_hits(outer: &mut Outer, old: &Hits, capacity: u32) -> Result<Hits, AgentError> {
    let mut new = Hits::create(capacity, BPF_F_NO_PREALLOC).map_err(create_err(MAP_HITS))?;
    let read = |m: &Hits| -> Result<Vec<(u32, Vec<u64>)>, AgentError> {
        m.iter()
            .map(|kv| kv.map(|(k, v)| (k, v.iter().copied().collect())))
            .collect::<Result<_, _>>()
            .map_err(create_err(MAP_HITS))
    };
    let per_cpu = |v: Vec<u64>| {
        PerCpuValues::try_from(v).map_err(|e| AgentError::MapWrite {
            map: MAP_HITS,
            source: e,
        })
    };
    let copied = read(old)?;
    for (k, v) in &copied {
        // A shrink may leave more counters than room: keep what fits.
        if new.insert(k, per_cpu(v.clone())?, 0).is_err() {
            break;
        }
    }
    outer
        .hits
        .set(0, &new, 0)
        .map_err(create_err(MAP_HITS))?;
    std::thread::sleep(GRACE);
    let before: std::collections::HashMap<u32, Vec<u64>> = copied.into_iter().collect();
    for (k, v) in read(old)? {
        let was = before.get(&k);
        let gained: Vec<u64> = v
            .iter()
            .enumerate()
            .map(|(cpu, n)| n - was.map_or(0, |w| w.get(cpu).copied().unwrap_or(0)))
            .collect();
        if gained.iter().all(|n| *n == 0) {
            continue;
        }
        let now: Vec<u64> = match new.get(&k, 0) {
            Ok(cur) => cur.iter().zip(&gained).map(|(a, b)| a + b).collect(),
            Err(_) => gained,
        };
        let _ = new.insert(k, per_cpu(now)?, 0);
    }
    Ok(new)
}
