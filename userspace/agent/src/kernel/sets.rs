//! The inner maps behind the arrays of maps: one group per rule set and the
//! hit counters. Each is created at the size asked for and swapped into its
//! outer slot whole, so packets see the old map or the new one.
//!
//! Inner maps are pinned beside their outer map (`C2W_NODES_V4-0` is set
//! 0's; inner.rs) because a restarted agent cannot open them by id: that
//! takes CAP_SYS_ADMIN, which the agent's unit does not grant. A pin is
//! trusted only if it names the map the outer slot holds (ids compared),
//! since a crash can fall between the swap and the pin.

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, IterableMap, Map, MapData};
use c2wall_common::*;

use super::create::{BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_HASH as HASH};
use super::inner::{clear_slot, inner_pin, install_inner, new_inner, read_inner, slot_id};
use super::table::Mapping;
use crate::dataplane::SetSize;
use crate::error::AgentError;

const NO_PREALLOC: u32 = 1;
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Slots a family's stash holds beside a table of `table_slots`: room for
/// in-place changes that find no place in the table, until the next reload
/// (which a full stash brings forward).
pub fn stash_slots(table_slots: u32) -> u32 {
    (table_slots / 64).clamp(64, 65_536)
}

pub type NodesV4 = Array<MapData, V4Bucket>;
pub type NodesV6 = Array<MapData, V6Bucket>;
pub type StashV4 = BpfHashMap<MapData, V4Key, u64>;
pub type StashV6 = BpfHashMap<MapData, V6Key, u64>;
pub type Ports = BpfHashMap<MapData, PortKey, PortValue>;
pub type Filter = Array<MapData, FilterBlock>;

/// The outer maps (index = rule set; hits: see hit_array.rs), and where inner maps
/// are pinned (None: unpinned maps of a test or the benchmark, which are
/// opened by id).
pub struct Outer {
    pub nodes_v4: Map,
    pub nodes_v6: Map,
    pub stash_v4: Map,
    pub stash_v6: Map,
    pub ports: Map,
    /// One per filter size (c2wall_common::MAP_FILTERS).
    pub filters: Vec<Map>,
    pub hits: Map,
    pub pins: Option<PathBuf>,
}

/// One rule set's inner maps and the capacities they were created with.
pub struct SetMaps {
    pub nodes_v4: NodesV4,
    pub nodes_v6: NodesV6,
    pub stash_v4: StashV4,
    pub stash_v6: StashV6,
    /// The tables mapped into our memory for the set's lifetime: mapping a
    /// BPF array maps all its pages at once, too slow for every delta.
    pub map_v4: Mapping<V4Bucket>,
    pub map_v6: Mapping<V6Bucket>,
    pub ports: Ports,
    pub filter: Filter,
    pub size: SetSize,
    /// The tables' hash seed (`Config::table_seed`).
    pub seed: u64,
    /// Slots in the stash per family (0: IPv4) and level index.
    pub stashed: [[u32; V6_LEVELS as usize]; 2],
}

fn capacity<K: aya::Pod, V>(m: &impl IterableMap<K, V>) -> u32 {
    m.map().info().map(|i| i.max_entries()).unwrap_or(0)
}

/// Buckets of a table holding `slots` slots at most.
pub fn buckets_for(slots: u32) -> u32 {
    slots.div_ceil(BUCKET_ENTRIES as u32).max(1)
}

/// Puts `filter` (of `bits` index bits) in slot `set` of its size's outer
/// map, and empties that slot in the others: a set's filter changes size
/// only while packets do not read the set (a reload), and its old filter's
/// memory goes back once no outer map holds it.
fn install_filter(
    filters: &mut [Map],
    pins: Option<&Path>,
    set: u32,
    bits: u8,
    filter: &Filter,
) -> Result<(), AgentError> {
    let class = (filter_class(bits) - FILTER_MIN_BITS) as usize;
    install_inner(&mut filters[class], filter_map(bits), pins, set, filter)?;
    for (i, outer) in filters.iter_mut().enumerate().filter(|(i, _)| *i != class) {
        let map = MAP_FILTERS[i];
        let write = |source| AgentError::MapWrite { map, source };
        // Looked at first: a lookup from user space is free, an update or
        // delete of a map-in-map waits out an RCU grace period.
        if slot_id(outer, set).map_err(write)?.is_some() {
            clear_slot(outer, set).map_err(write)?;
        }
        if let Some(dir) = pins {
            let _ = std::fs::remove_file(inner_pin(dir, map, set));
        }
    }
    Ok(())
}

/// `table` mapped into our memory.
pub fn mapping<B: aya::Pod>(
    map: &'static str,
    table: &Array<MapData, B>,
) -> Result<Mapping<B>, AgentError> {
    Mapping::new(table.map(), table.len()).map_err(|source| AgentError::MapWrite { map, source })
}

/// A new slot table of `buckets` buckets for outer map `map`.
pub fn new_table<B: aya::Pod>(
    map: &'static str,
    buckets: u32,
) -> Result<Array<MapData, B>, AgentError> {
    let name = if map == MAP_NODES_V4 {
        "c2w_nodes_v4"
    } else {
        "c2w_nodes_v6"
    };
    new_inner(map, ARRAY, name, buckets, BPF_F_INNER_MAP | BPF_F_MMAPABLE)
}

impl SetMaps {
    pub fn create(size: SetSize) -> Result<SetMaps, AgentError> {
        let blocks = 1u32 << filter_class(size.filter_bits);
        let nodes_v4 = new_table(MAP_NODES_V4, buckets_for(size.nodes_v4))?;
        let nodes_v6 = new_table(MAP_NODES_V6, buckets_for(size.nodes_v6))?;
        Ok(SetMaps {
            map_v4: mapping(MAP_NODES_V4, &nodes_v4)?,
            map_v6: mapping(MAP_NODES_V6, &nodes_v6)?,
            nodes_v4,
            nodes_v6,
            stash_v4: new_inner(
                MAP_STASH_V4,
                HASH,
                "c2w_stash_v4",
                stash_slots(size.nodes_v4),
                NO_PREALLOC,
            )?,
            stash_v6: new_inner(
                MAP_STASH_V6,
                HASH,
                "c2w_stash_v6",
                stash_slots(size.nodes_v6),
                NO_PREALLOC,
            )?,
            ports: new_inner(MAP_PORTS, HASH, "c2w_ports", size.ports, NO_PREALLOC)?,
            // Exactly its outer map's size, without BPF_F_INNER_MAP: the
            // program's lookups in it are inlined.
            filter: new_inner(
                filter_map(size.filter_bits),
                ARRAY,
                "c2w_filter",
                blocks,
                BPF_F_MMAPABLE,
            )?,
            size,
            seed: super::table::new_seed(),
            stashed: Default::default(),
        })
    }

    /// The maps in rule set `set`'s outer slots, or None when any of them
    /// is missing or cannot be trusted.
    pub fn read(outer: &mut Outer, set: u32, cfg: &Config) -> Option<SetMaps> {
        let pins = outer.pins.clone();
        let pins = pins.as_deref();
        let filter_bits = cfg.filter_bits[set as usize];
        let nodes_v4: NodesV4 = read_inner(&mut outer.nodes_v4, MAP_NODES_V4, pins, set)?;
        let nodes_v6: NodesV6 = read_inner(&mut outer.nodes_v6, MAP_NODES_V6, pins, set)?;
        let stash_v4: StashV4 = read_inner(&mut outer.stash_v4, MAP_STASH_V4, pins, set)?;
        let stash_v6: StashV6 = read_inner(&mut outer.stash_v6, MAP_STASH_V6, pins, set)?;
        let ports: Ports = read_inner(&mut outer.ports, MAP_PORTS, pins, set)?;
        let class = (filter_class(filter_bits) - FILTER_MIN_BITS) as usize;
        let filter: Filter = read_inner(
            &mut outer.filters[class],
            filter_map(filter_bits),
            pins,
            set,
        )?;
        let mut stashed = [[0u32; V6_LEVELS as usize]; 2];
        for k in stash_v4.keys() {
            stashed[0][(k.ok()?.level as u32 / V4_STRIDE) as usize] += 1;
        }
        for k in stash_v6.keys() {
            stashed[1][(k.ok()?.level as u32 / V6_STRIDE) as usize] += 1;
        }
        let size = SetSize {
            nodes_v4: nodes_v4.len() * BUCKET_ENTRIES as u32,
            nodes_v6: nodes_v6.len() * BUCKET_ENTRIES as u32,
            ports: capacity(&ports),
            filter_bits: if filter_bits > 0 && capacity(&filter) >= 1 << filter_bits {
                filter_bits
            } else {
                0
            },
        };
        Some(SetMaps {
            map_v4: mapping(MAP_NODES_V4, &nodes_v4).ok()?,
            map_v6: mapping(MAP_NODES_V6, &nodes_v6).ok()?,
            nodes_v4,
            nodes_v6,
            stash_v4,
            stash_v6,
            ports,
            filter,
            size,
            seed: cfg.table_seed[set as usize],
            stashed,
        })
    }

    /// Puts these maps in rule set `set`'s outer slots (filter and ports
    /// first: a node never points at port rules that are not reachable).
    pub fn install(&self, outer: &mut Outer, set: u32) -> Result<(), AgentError> {
        let pins = outer.pins.clone();
        let pins = pins.as_deref();
        // One thread per outer map: the kernel waits out an RCU grace
        // period after every update of a map-in-map, six in a row took
        // 50-80 ms; side by side the waits overlap.
        let Outer {
            filters,
            ports,
            stash_v4,
            stash_v6,
            nodes_v4,
            nodes_v6,
            ..
        } = outer;
        let SetMaps {
            filter: f,
            ports: p,
            stash_v4: s4,
            stash_v6: s6,
            nodes_v4: n4,
            nodes_v6: n6,
            ..
        } = self;
        let bits = self.size.filter_bits;
        std::thread::scope(|s| {
            let installs = [
                s.spawn(|| install_filter(filters, pins, set, bits, f)),
                s.spawn(|| install_inner(ports, MAP_PORTS, pins, set, p)),
                s.spawn(|| install_inner(stash_v4, MAP_STASH_V4, pins, set, s4)),
                s.spawn(|| install_inner(stash_v6, MAP_STASH_V6, pins, set, s6)),
                s.spawn(|| install_inner(nodes_v4, MAP_NODES_V4, pins, set, n4)),
            ];
            let last = install_inner(nodes_v6, MAP_NODES_V6, pins, set, n6);
            installs
                .into_iter()
                .map(|h| h.join().expect("an install thread does not panic"))
                .chain([last])
                .collect()
        })
    }
}
