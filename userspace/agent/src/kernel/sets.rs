//! The inner maps behind the arrays of maps: one group per rule set and the
//! hit counters. Each is created at the size asked for and swapped into its
//! outer slot whole, so packets see the old map or the new one.
//!
//! Inner maps are pinned beside their outer map (`C2W_NODES_V4-0` is set 0's)
//! because a restarted agent cannot open them by id: that takes
//! CAP_SYS_ADMIN, which the agent's unit does not grant. A pin is trusted
//! only if it names the map the outer slot holds (ids compared), since a
//! crash can fall between the swap and the pin.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, ArrayOfMaps, HashMap as BpfHashMap, IterableMap, Map, MapData, MapError};
use c2wall_common::*;

use super::create::{self, BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_HASH as HASH};
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

/// The outer maps (index = rule set; hits: index 0), and where inner maps
/// are pinned (None: unpinned maps of a test or the benchmark, which are
/// opened by id).
pub struct Outer {
    pub nodes_v4: Map,
    pub nodes_v6: Map,
    pub stash_v4: Map,
    pub stash_v6: Map,
    pub ports: Map,
    pub filter: Map,
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

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
    move |source| AgentError::Map { map, source }
}

fn capacity<K: aya::Pod, V>(m: &impl IterableMap<K, V>) -> u32 {
    m.map().info().map(|i| i.max_entries()).unwrap_or(0)
}

/// Buckets of a table holding `slots` slots at most.
pub fn buckets_for(slots: u32) -> u32 {
    slots.div_ceil(BUCKET_ENTRIES as u32).max(1)
}

/// The id of the inner map in slot `index` of `outer` (None: empty slot).
/// A lookup from userspace returns the id; it needs no privilege.
fn slot_id(outer: &Map, index: u32) -> io::Result<Option<u32>> {
    let Map::ArrayOfMaps(data) = outer else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    #[repr(C)]
    struct LookupAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut id: u32 = 0;
    let attr = LookupAttr {
        map_fd: data.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: &index as *const u32 as u64,
        value: &mut id as *mut u32 as u64,
        flags: 0,
    };
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    // SAFETY: attr points at valid key and value buffers for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            &attr as *const LookupAttr,
            std::mem::size_of::<LookupAttr>(),
        )
    };
    if rc == 0 {
        Ok(Some(id))
    } else {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(e),
        }
    }
}

/// Pin path of the inner map of `outer_name` in slot `index`.
fn inner_pin(dir: &Path, outer_name: &str, index: u32) -> PathBuf {
    dir.join(format!("{outer_name}-{index}"))
}

/// The inner map in slot `index` of an outer map, typed, if it can be
/// trusted: from its pin when the maps are pinned (and the pin names the
/// map in the slot), else by id.
pub(super) fn read_inner<V>(
    outer: &mut Map,
    name: &'static str,
    pins: Option<&Path>,
    index: u32,
) -> Option<V>
where
    V: TryFrom<Map, Error = MapError> + aya::maps::InnerMap,
    V: aya::maps::FromMapData,
{
    let in_slot = slot_id(outer, index).ok()??;
    match pins {
        Some(dir) => {
            let data = MapData::from_pin(inner_pin(dir, name, index)).ok()?;
            (data.info().ok()?.id() == in_slot).then_some(())?;
            V::try_from(Map::from_map_data(data).ok()?).ok()
        }
        None => {
            let view = ArrayOfMaps::<&mut MapData, V>::try_from(&mut *outer).ok()?;
            view.get(&index, 0).ok()
        }
    }
}

/// Puts `inner` in slot `index` of `outer` and, for pinned maps, pins it
/// (staged, then renamed over the old pin once the slot holds it).
pub(super) fn install_inner<V>(
    outer: &mut Map,
    name: &'static str,
    pins: Option<&Path>,
    index: u32,
    inner: &V,
) -> Result<(), AgentError>
where
    V: aya::maps::InnerMap + IterableMapData,
{
    let staged = pins.map(|dir| dir.join(format!("{name}-{index}-staged")));
    if let Some(path) = &staged {
        let _ = std::fs::remove_file(path);
        inner.data().pin(path).map_err(|source| AgentError::Pin {
            path: path.clone(),
            source,
        })?;
    }
    let mut view = ArrayOfMaps::<&mut MapData, V>::try_from(&mut *outer).map_err(map_err(name))?;
    view.set(index, inner, 0).map_err(map_err(name))?;
    if let (Some(dir), Some(path)) = (pins, staged) {
        let final_path = inner_pin(dir, name, index);
        std::fs::rename(&path, &final_path).map_err(|source| AgentError::WriteFile {
            path: final_path,
            source,
        })?;
    }
    Ok(())
}

/// A new inner map for outer map `map`, typed (key and value sizes from
/// the type), with BTF (see create.rs).
pub(super) fn new_inner<T>(
    map: &'static str,
    map_type: u32,
    name: &str,
    max_entries: u32,
    flags: u32,
) -> Result<T, AgentError>
where
    T: TryFrom<Map, Error = MapError> + InnerKv,
{
    let m = create::create(map_type, name, T::KEY, T::VALUE, max_entries, flags)
        .map_err(|source| AgentError::MapWrite { map, source })?;
    T::try_from(m).map_err(map_err(map))
}

/// Key and value sizes of a typed inner map.
pub(super) trait InnerKv {
    const KEY: u32;
    const VALUE: u32;
}

impl<K: aya::Pod, V: aya::Pod> InnerKv for BpfHashMap<MapData, K, V> {
    const KEY: u32 = std::mem::size_of::<K>() as u32;
    const VALUE: u32 = std::mem::size_of::<V>() as u32;
}

impl<V: aya::Pod> InnerKv for Array<MapData, V> {
    const KEY: u32 = 4;
    const VALUE: u32 = std::mem::size_of::<V>() as u32;
}

/// The MapData of a typed map, for pinning.
pub trait IterableMapData {
    fn data(&self) -> &MapData;
}

impl<K: aya::Pod, V: aya::Pod> IterableMapData for BpfHashMap<MapData, K, V> {
    fn data(&self) -> &MapData {
        self.map()
    }
}

impl<V: aya::Pod> IterableMapData for Array<MapData, V> {
    fn data(&self) -> &MapData {
        self.map()
    }
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
        let blocks = if size.filter_bits == 0 {
            1
        } else {
            1u32 << size.filter_bits
        };
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
            filter: new_inner(
                MAP_FILTER,
                ARRAY,
                "c2w_filter",
                blocks,
                BPF_F_INNER_MAP | BPF_F_MMAPABLE,
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
        let filter: Filter = read_inner(&mut outer.filter, MAP_FILTER, pins, set)?;
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
            filter,
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
        std::thread::scope(|s| {
            let installs = [
                s.spawn(|| install_inner(filter, MAP_FILTER, pins, set, f)),
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
