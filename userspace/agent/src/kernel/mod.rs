//! [`Dataplane`] over the real BPF maps.

mod sets;

use std::collections::HashMap;

use aya::maps::{lpm_trie::Key, Array, LpmTrie, Map, MapData, MapError, PerCpuArray};
use c2wall_common::*;
use c2wall_model::{Family, Prefix};

use crate::compile::{NodeSlot, PortSlot};
use crate::config::Capacity;
use crate::dataplane::{Dataplane, Dump, SetSize};
use crate::error::AgentError;
use sets::{Hits, Outer, SetMaps};

pub struct KernelMaps {
    config: Array<MapData, Config>,
    outer: Outer,
    /// Per rule set: the inner maps in its outer slots.
    sets: [SetMaps; 2],
    allow_v4: LpmTrie<MapData, [u8; 4], u32>,
    allow_v6: LpmTrie<MapData, [u8; 16], u32>,
    counters: PerCpuArray<MapData, u64>,
    hits: Hits,
    ifslot: Array<MapData, u32>,
    limits: Capacity,
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    maps: &mut impl FnMut(&'static str) -> Option<Map>,
    name: &'static str,
) -> Result<T, AgentError> {
    let m = maps(name).ok_or(AgentError::MissingMap(name))?;
    T::try_from(m).map_err(|source| AgentError::Map { map: name, source })
}

impl KernelMaps {
    /// Takes the maps out of a loaded object (or from pins, via `take`).
    /// Rule sets and hit counters already in the outer maps (pinned by an
    /// earlier agent) are read; empty outer slots get empty minimal maps.
    /// `limits`: the configured upper capacities.
    pub fn new(
        mut take: impl FnMut(&'static str) -> Option<Map>,
        limits: Capacity,
    ) -> Result<Self, AgentError> {
        let config: Array<MapData, Config> = typed(&mut take, MAP_CONFIG)?;
        let cfg = config.get(&0, 0).map_err(|source| AgentError::Map {
            map: MAP_CONFIG,
            source,
        })?;
        let mut outer = Outer {
            nodes_v4: typed(&mut take, MAP_NODES_V4)?,
            nodes_v6: typed(&mut take, MAP_NODES_V6)?,
            ports: typed(&mut take, MAP_PORTS)?,
            filter: typed(&mut take, MAP_FILTER)?,
            hits: typed(&mut take, MAP_HITS)?,
        };
        let mut set = |i: u32| -> Result<SetMaps, AgentError> {
            if let Some(m) = SetMaps::read(&outer, i, cfg.filter_bits[i as usize]) {
                return Ok(m);
            }
            let m = SetMaps::create(SetSize::EMPTY)?;
            m.install(&mut outer, i)?;
            Ok(m)
        };
        let sets = [set(0)?, set(1)?];
        let hits = sets::read_or_create_hits(&mut outer, 1)?;
        Ok(KernelMaps {
            config,
            outer,
            sets,
            allow_v4: typed(&mut take, MAP_ALLOW_V4)?,
            allow_v6: typed(&mut take, MAP_ALLOW_V6)?,
            counters: typed(&mut take, MAP_COUNTERS)?,
            hits,
            ifslot: typed(&mut take, MAP_IFSLOT)?,
            limits,
        })
    }

    /// Opens the maps pinned under `dir` (read-only users: `status`, tests).
    pub fn from_pins(dir: &std::path::Path) -> Result<Self, AgentError> {
        let mut open = |name: &'static str| {
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
        Self::new(&mut open, unlimited)
    }

    fn set(&self, set: u8) -> &SetMaps {
        &self.sets[set as usize & 1]
    }

    fn set_mut(&mut self, set: u8) -> &mut SetMaps {
        &mut self.sets[set as usize & 1]
    }

    /// Which allowlists have prefixes, for `Config::allow`.
    fn allow_bits(&self) -> u8 {
        let mut bits = 0;
        if self.allow_v4.keys().next().is_some() {
            bits |= ALLOW_HAS_V4;
        }
        if self.allow_v6.keys().next().is_some() {
            bits |= ALLOW_HAS_V6;
        }
        bits
    }

    /// Records in the config which allowlists the program must consult.
    /// Called with `extra` set before a prefix is added (so it is consulted
    /// from the moment it exists) and after one is removed.
    fn write_allow_bits(&mut self, extra: u8) -> Result<(), AgentError> {
        let mut cfg = self.read_config()?;
        let bits = self.allow_bits() | extra;
        if cfg.allow != bits {
            cfg.allow = bits;
            self.write_config(&cfg)?;
        }
        Ok(())
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

fn put_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
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
fn del_ok(map: &'static str, r: Result<(), MapError>) -> Result<(), AgentError> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) | Err(MapError::ElementNotFound) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(put_err(map)(e)),
    }
}

fn allow_data(p: &Prefix) -> (u32, Vec<u8>) {
    (p.len() as u32, p.octets())
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
        let m = self.set_mut(set);
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
        let m = self.set_mut(set);
        match s.family {
            Family::V4 => del_ok(MAP_NODES_V4, m.nodes_v4.remove(&v4_key(s))),
            Family::V6 => del_ok(MAP_NODES_V6, m.nodes_v6.remove(&v6_key(s))),
        }
    }
    fn put_port(&mut self, set: u8, s: &PortSlot, v: &PortValue) -> Result<(), AgentError> {
        self.set_mut(set)
            .ports
            .insert(port_key(s), v, 0)
            .map_err(put_err(MAP_PORTS))
    }
    fn del_port(&mut self, set: u8, s: &PortSlot) -> Result<(), AgentError> {
        del_ok(MAP_PORTS, self.set_mut(set).ports.remove(&port_key(s)))
    }
    fn dump(&self) -> Result<Dump, AgentError> {
        let mut d = Dump::default();
        for set in 0..2u8 {
            self.dump_set(set, &mut d)?;
        }
        Ok(d)
    }
    fn allowlist(&self) -> Result<Vec<Prefix>, AgentError> {
        self.allowlist_prefixes()
    }
    fn put_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        let extra = match p.family() {
            Family::V4 => ALLOW_HAS_V4,
            Family::V6 => ALLOW_HAS_V6,
        };
        self.write_allow_bits(extra)?;
        self.insert_allow(p)
    }
    fn del_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        self.remove_allow(p)?;
        self.write_allow_bits(0)
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
        let mut out = HashMap::new();
        for kv in self.hits.iter() {
            let (k, v) = kv.map_err(|source| AgentError::Map {
                map: MAP_HITS,
                source,
            })?;
            out.insert(k, v.iter().sum());
        }
        Ok(out)
    }
    fn forget_hits(&mut self, id: u32) -> Result<(), AgentError> {
        del_ok(MAP_HITS, self.hits.remove(&id))
    }
    fn put_filter(&mut self, set: u8, index: u32, block: &FilterBlock) -> Result<(), AgentError> {
        self.set_mut(set)
            .filter
            .set(index, block, 0)
            .map_err(put_err(MAP_FILTER))
    }
    fn reset_set(&mut self, set: u8, size: SetSize) -> Result<(), AgentError> {
        let fresh = SetMaps::create(size)?;
        fresh.install(&mut self.outer, (set & 1) as u32)?;
        // The old maps are freed when the last reference (ours, here) goes.
        *self.set_mut(set) = fresh;
        Ok(())
    }
    fn set_size(&self, set: u8) -> SetSize {
        self.set(set).size
    }
    fn capacity(&self) -> (usize, usize, usize) {
        let l = &self.limits;
        (l.nodes_v4 as usize, l.nodes_v6 as usize, l.ports as usize)
    }
    fn hits_capacity(&self) -> (u32, u32) {
        (sets::hits_capacity(&self.hits), self.limits.hits)
    }
    fn resize_hits(&mut self, capacity: u32) -> Result<(), AgentError> {
        self.hits = sets::resize_hits(&mut self.outer, &self.hits, capacity)?;
        Ok(())
    }
}

impl KernelMaps {
    fn dump_set(&self, set: u8, d: &mut Dump) -> Result<(), AgentError> {
        let err = |map| move |source| AgentError::Map { map, source };
        let m = self.set(set);
        for kv in m.nodes_v4.iter() {
            let (k, v) = kv.map_err(err(MAP_NODES_V4))?;
            let mut addr = [0; 16];
            addr[..4].copy_from_slice(&k.addr);
            let slot = NodeSlot {
                family: Family::V4,
                level: k.level,
                addr,
            };
            d.nodes.push((set, slot, v));
        }
        for kv in m.nodes_v6.iter() {
            let (k, v) = kv.map_err(err(MAP_NODES_V6))?;
            let slot = NodeSlot {
                family: Family::V6,
                level: k.level,
                addr: k.addr,
            };
            d.nodes.push((set, slot, v));
        }
        for kv in m.ports.iter() {
            let (k, v) = kv.map_err(err(MAP_PORTS))?;
            let family = if k.family == FAMILY_V4 {
                Family::V4
            } else {
                Family::V6
            };
            let slot = PortSlot {
                node: NodeSlot {
                    family,
                    level: k.level,
                    addr: k.addr,
                },
                proto: k.proto,
                port: u16::from_be_bytes(k.port),
            };
            d.ports.push((set, slot, v));
        }
        Ok(())
    }

    fn allowlist_prefixes(&self) -> Result<Vec<Prefix>, AgentError> {
        let mut out = Vec::new();
        for k in self.allow_v4.keys() {
            let k = k.map_err(|source| AgentError::Map {
                map: MAP_ALLOW_V4,
                source,
            })?;
            let addr = std::net::Ipv4Addr::from(k.data());
            if let Ok(p) = Prefix::new(addr.into(), k.prefix_len() as u8) {
                out.push(p);
            }
        }
        for k in self.allow_v6.keys() {
            let k = k.map_err(|source| AgentError::Map {
                map: MAP_ALLOW_V6,
                source,
            })?;
            let addr = std::net::Ipv6Addr::from(k.data());
            if let Ok(p) = Prefix::new(addr.into(), k.prefix_len() as u8) {
                out.push(p);
            }
        }
        Ok(out)
    }
    fn insert_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        let (len, o) = allow_data(p);
        match p.family() {
            Family::V4 => self
                .allow_v4
                .insert(&Key::new(len, [o[0], o[1], o[2], o[3]]), 0, 0)
                .map_err(put_err(MAP_ALLOW_V4)),
            Family::V6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&o);
                self.allow_v6
                    .insert(&Key::new(len, a), 0, 0)
                    .map_err(put_err(MAP_ALLOW_V6))
            }
        }
    }
    fn remove_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        let (len, o) = allow_data(p);
        match p.family() {
            Family::V4 => del_ok(
                MAP_ALLOW_V4,
                self.allow_v4
                    .remove(&Key::new(len, [o[0], o[1], o[2], o[3]])),
            ),
            Family::V6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&o);
                del_ok(MAP_ALLOW_V6, self.allow_v6.remove(&Key::new(len, a)))
            }
        }
    }
}
