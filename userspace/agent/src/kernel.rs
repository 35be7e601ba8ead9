//! [`Dataplane`] over the real BPF maps.

use std::collections::HashMap;

use aya::maps::{
    lpm_trie::Key, Array, HashMap as BpfHashMap, LpmTrie, Map, MapData, MapError, PerCpuArray,
    PerCpuHashMap,
};
use c2wall_common::*;
use c2wall_model::{Family, Prefix};

use crate::compile::{NodeSlot, PortSlot};
use crate::dataplane::{Dataplane, Dump};
use crate::error::AgentError;

pub struct KernelMaps {
    config: Array<MapData, Config>,
    nodes_v4: BpfHashMap<MapData, V4Key, NodeValue>,
    nodes_v6: BpfHashMap<MapData, V6Key, NodeValue>,
    ports: BpfHashMap<MapData, PortKey, PortValue>,
    allow_v4: LpmTrie<MapData, [u8; 4], u32>,
    allow_v6: LpmTrie<MapData, [u8; 16], u32>,
    counters: PerCpuArray<MapData, u64>,
    hits: PerCpuHashMap<MapData, u32, u64>,
    filter: Array<MapData, FilterBlock>,
    ifslot: Array<MapData, u32>,
    caps: (usize, usize, usize),
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
    /// `caps`: slot capacities of the v4 node, v6 node and port maps.
    pub fn new(
        mut take: impl FnMut(&'static str) -> Option<Map>,
        caps: (u32, u32, u32),
    ) -> Result<Self, AgentError> {
        let caps = (caps.0 as usize, caps.1 as usize, caps.2 as usize);
        Ok(KernelMaps {
            config: typed(&mut take, MAP_CONFIG)?,
            nodes_v4: typed(&mut take, MAP_NODES_V4)?,
            nodes_v6: typed(&mut take, MAP_NODES_V6)?,
            ports: typed(&mut take, MAP_PORTS)?,
            allow_v4: typed(&mut take, MAP_ALLOW_V4)?,
            allow_v6: typed(&mut take, MAP_ALLOW_V6)?,
            counters: typed(&mut take, MAP_COUNTERS)?,
            hits: typed(&mut take, MAP_HITS)?,
            filter: typed(&mut take, MAP_FILTER)?,
            ifslot: typed(&mut take, MAP_IFSLOT)?,
            caps,
        })
    }

    /// Opens the maps pinned under `dir` (read-only users: `status`, tests).
    pub fn from_pins(dir: &std::path::Path) -> Result<Self, AgentError> {
        let mut open = |name: &'static str| {
            MapData::from_pin(dir.join(name))
                .ok()
                .and_then(|d| Map::from_map_data(d).ok())
        };
        Self::new(&mut open, (u32::MAX, u32::MAX, u32::MAX))
    }
}

fn v4_key(set: u8, s: &NodeSlot) -> V4Key {
    V4Key {
        addr: [s.addr[0], s.addr[1], s.addr[2], s.addr[3]],
        level: s.level,
        set,
        _pad: [0; 2],
    }
}

fn v6_key(set: u8, s: &NodeSlot) -> V6Key {
    V6Key {
        addr: s.addr,
        level: s.level,
        set,
        _pad: [0; 2],
    }
}

fn port_key(set: u8, s: &PortSlot) -> PortKey {
    PortKey {
        addr: s.node.addr,
        level: s.node.level,
        set,
        family: match s.node.family {
            Family::V4 => FAMILY_V4,
            Family::V6 => FAMILY_V6,
        },
        proto: s.proto,
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
        match s.family {
            Family::V4 => self
                .nodes_v4
                .insert(v4_key(set, s), v, 0)
                .map_err(put_err(MAP_NODES_V4)),
            Family::V6 => self
                .nodes_v6
                .insert(v6_key(set, s), v, 0)
                .map_err(put_err(MAP_NODES_V6)),
        }
    }
    fn del_node(&mut self, set: u8, s: &NodeSlot) -> Result<(), AgentError> {
        match s.family {
            Family::V4 => del_ok(MAP_NODES_V4, self.nodes_v4.remove(&v4_key(set, s))),
            Family::V6 => del_ok(MAP_NODES_V6, self.nodes_v6.remove(&v6_key(set, s))),
        }
    }
    fn put_port(&mut self, set: u8, s: &PortSlot, v: &PortValue) -> Result<(), AgentError> {
        self.ports
            .insert(port_key(set, s), v, 0)
            .map_err(put_err(MAP_PORTS))
    }
    fn del_port(&mut self, set: u8, s: &PortSlot) -> Result<(), AgentError> {
        del_ok(MAP_PORTS, self.ports.remove(&port_key(set, s)))
    }
    fn dump(&self) -> Result<Dump, AgentError> {
        let mut d = Dump::default();
        let err = |map| move |source| AgentError::Map { map, source };
        for kv in self.nodes_v4.iter() {
            let (k, v) = kv.map_err(err(MAP_NODES_V4))?;
            let mut addr = [0; 16];
            addr[..4].copy_from_slice(&k.addr);
            let slot = NodeSlot {
                family: Family::V4,
                level: k.level,
                addr,
            };
            d.nodes.push((k.set, slot, v));
        }
        for kv in self.nodes_v6.iter() {
            let (k, v) = kv.map_err(err(MAP_NODES_V6))?;
            let slot = NodeSlot {
                family: Family::V6,
                level: k.level,
                addr: k.addr,
            };
            d.nodes.push((k.set, slot, v));
        }
        for kv in self.ports.iter() {
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
            d.ports.push((k.set, slot, v));
        }
        Ok(d)
    }
    fn allowlist(&self) -> Result<Vec<Prefix>, AgentError> {
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
    fn put_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
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
    fn del_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
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
    fn put_filter(&mut self, index: u32, block: &FilterBlock) -> Result<(), AgentError> {
        self.filter
            .set(index, block, 0)
            .map_err(put_err(MAP_FILTER))
    }
    fn capacity(&self) -> (usize, usize, usize) {
        self.caps
    }
}
