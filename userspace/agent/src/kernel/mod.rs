//! [`Dataplane`] over the real BPF maps.
//!
//! The program's maps come from the loaded object (or their pins); the
//! rule sets' inner maps and the hit counters behind the arrays of maps are
//! managed here (`sets`, `hits`).

mod allow;
mod batch;
mod create;
mod dump;
mod hit_array;
mod hits;
pub mod memory;
mod sets;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use aya::maps::{Array, IterableMap, Map, MapData, MapError, PerCpuArray};
use c2wall_common::*;
use c2wall_model::{Family, Prefix};

use crate::compile::{NodeSlot, PortSlot};
use crate::config::Capacity;
use crate::dataplane::{Dataplane, Dump, SetSize};
use crate::error::AgentError;
use allow::Allow;
use hits::HitSlots;
use sets::{Outer, SetMaps};

/// Whether this handle may change what the program reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The agent: creates missing inner maps, writes.
    Own,
    /// `status`, the metrics reader, tests: never replaces a map.
    Read,
}

pub struct KernelMaps {
    config: Array<MapData, Config>,
    outer: RefCell<Outer>,
    /// Per rule set: its inner maps, None when they cannot be read (only
    /// for a reader, or for a set the program reads whose pins a crash left
    /// behind: the next reload replaces it).
    sets: [Option<SetMaps>; 2],
    allow: Allow,
    counters: PerCpuArray<MapData, u64>,
    ifslot: Array<MapData, u32>,
    /// Built on first use from the rules in the kernel (a full scan).
    hits: RefCell<Option<HitSlots>>,
    limits: Capacity,
    access: Access,
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    maps: &mut impl FnMut(&'static str) -> Option<Map>,
    name: &'static str,
) -> Result<T, AgentError> {
    let m = maps(name).ok_or(AgentError::MissingMap(name))?;
    T::try_from(m).map_err(|source| AgentError::Map { map: name, source })
}

fn raw(
    maps: &mut impl FnMut(&'static str) -> Option<Map>,
    name: &'static str,
) -> Result<Map, AgentError> {
    maps(name).ok_or(AgentError::MissingMap(name))
}

pub(crate) fn put_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
    move |e| match e {
        MapError::SyscallError(s) => AgentError::MapWrite {
            map,
            source: s.io_error,
        },
        source => AgentError::Map { map, source },
    }
}

/// Deleting what is already gone is success: deletes must be idempotent for
/// adoption and rollback.
pub(crate) fn del_ok(map: &'static str, r: Result<(), MapError>) -> Result<(), AgentError> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) | Err(MapError::ElementNotFound) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(put_err(map)(e)),
    }
}

impl KernelMaps {
    /// Takes the maps out of a loaded object (via `take`). Rule sets already
    /// in the outer maps (pinned by an earlier agent under `pins`) are read;
    /// empty or untrustworthy outer slots of a set the program does not read
    /// get empty minimal maps. `limits`: the configured upper capacities.
    pub fn new(
        take: impl FnMut(&'static str) -> Option<Map>,
        limits: Capacity,
        pins: Option<&Path>,
    ) -> Result<Self, AgentError> {
        Self::open(take, limits, pins, Access::Own)
    }

    /// Opens the maps pinned under `dir` to read them (`status`, metrics,
    /// tests): nothing is created or replaced.
    pub fn from_pins(dir: &Path) -> Result<Self, AgentError> {
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name))
                .ok()
                .and_then(|d| Map::from_map_data(d).ok())
        };
        let unlimited = Capacity {
            nodes_v4: u32::MAX,
            nodes_v6: u32::MAX,
            ports: u32::MAX,
            hits: u32::MAX,
        };
        Self::open(open, unlimited, Some(dir), Access::Read)
    }

    fn open(
        mut take: impl FnMut(&'static str) -> Option<Map>,
        limits: Capacity,
        pins: Option<&Path>,
        access: Access,
    ) -> Result<Self, AgentError> {
        let config: Array<MapData, Config> = typed(&mut take, MAP_CONFIG)?;
        let cfg = config.get(&0, 0).map_err(|source| AgentError::Map {
            map: MAP_CONFIG,
            source,
        })?;
        let mut outer = Outer {
            nodes_v4: raw(&mut take, MAP_NODES_V4)?,
            nodes_v6: raw(&mut take, MAP_NODES_V6)?,
            ports: raw(&mut take, MAP_PORTS)?,
            filter: raw(&mut take, MAP_FILTER)?,
            hits: raw(&mut take, MAP_HITS)?,
            pins: pins.map(Path::to_path_buf),
        };
        let active = cfg.active_set & 1;
        let mut sets = [None, None];
        for set in 0..RULE_SETS {
            let mut m = SetMaps::read(&mut outer, set, cfg.filter_bits[set as usize]);
            // A set packets do not read can always be replaced; the active
            // one only when nothing is in it yet (fresh maps).
            let fresh = cfg.v4_levels[set as usize] == 0 && cfg.v6_levels[set as usize] == 0;
            if m.is_none() && access == Access::Own && (set != active || fresh) {
                let created = SetMaps::create(SetSize::EMPTY)?;
                created.install(&mut outer, set)?;
                m = Some(created);
            }
            sets[set as usize] = m;
        }
        Ok(KernelMaps {
            config,
            outer: RefCell::new(outer),
            sets,
            allow: Allow {
                v4: typed(&mut take, MAP_ALLOW_V4)?,
                v6: typed(&mut take, MAP_ALLOW_V6)?,
            },
            counters: typed(&mut take, MAP_COUNTERS)?,
            ifslot: typed(&mut take, MAP_IFSLOT)?,
            hits: RefCell::new(None),
            limits,
            access,
        })
    }

    fn set_mut(&mut self, set: u8) -> Result<&mut SetMaps, AgentError> {
        self.sets[set as usize & 1]
            .as_mut()
            .ok_or(AgentError::UnreadableRuleSet(set))
    }

    /// Runs `f` on the hit-counter table (built first if needed: a scan of
    /// the rules in the kernel) and the outer maps.
    fn with_hits<T>(
        &self,
        f: impl FnOnce(&mut HitSlots, &mut Outer) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut outer = self.outer.borrow_mut();
        let mut hits = self.hits.borrow_mut();
        if hits.is_none() {
            let mut in_use = Vec::new();
            for m in self.sets.iter().flatten() {
                dump::counter_slots(m, &mut in_use)?;
            }
            let array = match (hit_array::read_hit_array(&mut outer)?, self.access) {
                (Some(a), _) => a,
                (None, Access::Own) => {
                    hit_array::create_hit_array(&mut outer, hits::MIN_SLOTS, |_| Ok(()))?.0
                }
                (None, Access::Read) => return Err(AgentError::MissingMap(MAP_HITS)),
            };
            *hits = Some(HitSlots::adopt(array, in_use, self.limits.hits));
        }
        f(hits.as_mut().expect("built above"), &mut outer)
    }

    /// `rules` with their counter slots filled in.
    fn counted(&self, rules: [Rule; 2]) -> Result<[Rule; 2], AgentError> {
        self.with_hits(|h, outer| {
            let mut out = rules;
            for r in &mut out {
                if r.action != ACTION_NONE {
                    r.counter = h.assign(outer, r.entry_id)?;
                }
            }
            Ok(out)
        })
    }
}

fn v4_key(s: &NodeSlot) -> V4Key {
    V4Key {
        addr: [s.addr[0], s.addr[1], s.addr[2], s.addr[3]],
        level: s.level,
        _pad: [0; 3],
    }
}

fn v6_key(s: &NodeSlot) -> V6Key {
    V6Key {
        addr: s.addr,
        level: s.level,
        _pad: [0; 3],
    }
}

fn port_key(s: &PortSlot) -> PortKey {
    PortKey {
        addr: s.node.addr,
        level: s.node.level,
        family: match s.node.family {
            Family::V4 => FAMILY_V4,
            Family::V6 => FAMILY_V6,
        },
        proto: s.proto,
        _pad0: 0,
        port: s.port.to_be_bytes(),
        _pad: [0; 2],
    }
}

impl Dataplane for KernelMaps {
    fn read_config(&self) -> Result<Config, AgentError> {
        self.config.get(&0, 0).map_err(|source| AgentError::Map {
            map: MAP_CONFIG,
            source,
        })
    }
    fn write_config(&mut self, cfg: &Config) -> Result<(), AgentError> {
        self.config.set(0, cfg, 0).map_err(put_err(MAP_CONFIG))
    }
    fn put_node(&mut self, set: u8, s: &NodeSlot, v: &NodeValue) -> Result<(), AgentError> {
        let [to_cc, from_cc] = self.counted([v.to_cc, v.from_cc])?;
        let v = NodeValue {
            to_cc,
            from_cc,
            ..*v
        };
        let m = self.set_mut(set)?;
        match s.family {
            Family::V4 => m
                .nodes_v4
                .insert(v4_key(s), v, 0)
                .map_err(put_err(MAP_NODES_V4)),
            Family::V6 => m
                .nodes_v6
                .insert(v6_key(s), v, 0)
                .map_err(put_err(MAP_NODES_V6)),
        }
    }
    fn del_node(&mut self, set: u8, s: &NodeSlot) -> Result<(), AgentError> {
        let m = self.set_mut(set)?;
        match s.family {
            Family::V4 => del_ok(MAP_NODES_V4, m.nodes_v4.remove(&v4_key(s))),
            Family::V6 => del_ok(MAP_NODES_V6, m.nodes_v6.remove(&v6_key(s))),
        }
    }
    fn put_port(&mut self, set: u8, s: &PortSlot, v: &PortValue) -> Result<(), AgentError> {
        let [to_cc, from_cc] = self.counted([v.to_cc, v.from_cc])?;
        self.set_mut(set)?
            .ports
            .insert(port_key(s), PortValue { to_cc, from_cc }, 0)
            .map_err(put_err(MAP_PORTS))
    }
    fn del_port(&mut self, set: u8, s: &PortSlot) -> Result<(), AgentError> {
        del_ok(MAP_PORTS, self.set_mut(set)?.ports.remove(&port_key(s)))
    }
    fn fill(
        &mut self,
        set: u8,
        nodes: &HashMap<NodeSlot, NodeValue>,
        ports: &HashMap<PortSlot, PortValue>,
    ) -> Result<usize, AgentError> {
        let mut pk = Vec::with_capacity(ports.len());
        let mut pv = Vec::with_capacity(ports.len());
        for (s, v) in ports {
            let [to_cc, from_cc] = self.counted([v.to_cc, v.from_cc])?;
            pk.push(port_key(s));
            pv.push(PortValue { to_cc, from_cc });
        }
        let (mut k4, mut v4, mut k6, mut v6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (s, v) in nodes {
            let [to_cc, from_cc] = self.counted([v.to_cc, v.from_cc])?;
            let v = NodeValue {
                to_cc,
                from_cc,
                ..*v
            };
            match s.family {
                Family::V4 => {
                    k4.push(v4_key(s));
                    v4.push(v);
                }
                Family::V6 => {
                    k6.push(v6_key(s));
                    v6.push(v);
                }
            }
        }
        let m = self.set_mut(set)?;
        let write = |map: &'static str| move |source| AgentError::MapWrite { map, source };
        batch::update(m.ports.map(), &pk, &pv).map_err(write(MAP_PORTS))?;
        batch::update(m.nodes_v4.map(), &k4, &v4).map_err(write(MAP_NODES_V4))?;
        batch::update(m.nodes_v6.map(), &k6, &v6).map_err(write(MAP_NODES_V6))?;
        Ok(nodes.len() + ports.len())
    }
    fn dump(&self) -> Result<Dump, AgentError> {
        let mut d = Dump::default();
        for (set, m) in self.sets.iter().enumerate() {
            if let Some(m) = m {
                dump::dump_set(m, set as u8, &mut d)?;
            }
        }
        Ok(d)
    }
    fn readable(&self, set: u8) -> bool {
        self.sets[set as usize & 1].is_some()
    }
    fn allowlist(&self) -> Result<Vec<Prefix>, AgentError> {
        self.allow.prefixes()
    }
    fn put_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        self.allow.insert(p)
    }
    fn del_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        self.allow.remove(p)
    }
    fn counters(&self) -> Result<Vec<u64>, AgentError> {
        let by_slot = self.counters_by_slot()?;
        Ok((0..COUNTER_SLOTS as usize)
            .map(|i| by_slot.iter().map(|c| c[i]).sum())
            .collect())
    }
    fn counters_by_slot(&self) -> Result<Vec<Vec<u64>>, AgentError> {
        let all: Vec<u64> = (0..COUNTER_ARRAY)
            .map(|i| {
                self.counters
                    .get(&i, 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .map_err(|source| AgentError::Map {
                        map: MAP_COUNTERS,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(all
            .chunks(COUNTER_SLOTS as usize)
            .map(<[u64]>::to_vec)
            .collect())
    }
    fn iface_slot(&self, ifindex: u32) -> Result<u32, AgentError> {
        self.ifslot
            .get(&(ifindex % IFINDEX_BUCKETS), 0)
            .map_err(|source| AgentError::Map {
                map: MAP_IFSLOT,
                source,
            })
    }
    fn iface_slots_used(&self) -> Result<Vec<u32>, AgentError> {
        (0..IFINDEX_BUCKETS)
            .map(|b| self.ifslot.get(&b, 0))
            .filter(|r| !matches!(r, Ok(0)))
            .collect::<Result<_, _>>()
            .map_err(|source| AgentError::Map {
                map: MAP_IFSLOT,
                source,
            })
    }
    fn set_iface_slot(&mut self, ifindex: u32, slot: u32) -> Result<(), AgentError> {
        self.ifslot
            .set(ifindex % IFINDEX_BUCKETS, slot, 0)
            .map_err(put_err(MAP_IFSLOT))
    }
    fn hits(&self) -> Result<HashMap<u32, u64>, AgentError> {
        self.with_hits(|h, _| Ok(h.hits()))
    }
    fn forget_hits(&mut self, id: u32) -> Result<(), AgentError> {
        self.with_hits(|h, _| h.forget(id))
    }
    fn tidy(&mut self) -> Result<(), AgentError> {
        self.with_hits(|h, outer| h.shrink_if_sparse(outer))
    }
    fn put_filter(&mut self, set: u8, index: u32, block: &FilterBlock) -> Result<(), AgentError> {
        self.set_mut(set)?
            .filter
            .set(index, block, 0)
            .map_err(put_err(MAP_FILTER))
    }
    fn reset_set(&mut self, set: u8, size: SetSize) -> Result<(), AgentError> {
        let fresh = SetMaps::create(size)?;
        fresh.install(&mut self.outer.borrow_mut(), (set & 1) as u32)?;
        // The old maps are freed when the last reference (ours, here) goes.
        self.sets[set as usize & 1] = Some(fresh);
        Ok(())
    }
    fn set_size(&self, set: u8) -> SetSize {
        self.sets[set as usize & 1]
            .as_ref()
            .map_or(SetSize::EMPTY, |m| m.size)
    }
    fn capacity(&self) -> (usize, usize, usize) {
        let l = &self.limits;
        (l.nodes_v4 as usize, l.nodes_v6 as usize, l.ports as usize)
    }
}
