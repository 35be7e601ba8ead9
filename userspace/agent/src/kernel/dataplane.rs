//! The [`Dataplane`] operations on [`KernelMaps`]: map keys from slots,
//! counter slots filled into rules on their way in, the rest delegated to
//! the module that owns each map.

use std::collections::HashMap;

use aya::maps::IterableMap;
use c2wall_common::*;
use c2wall_model::{Family, Prefix};

use super::nodes::TableKey;
use super::sets::{mapping, SetMaps};
use super::{batch, del_ok, dump, node_meta, put_err, KernelMaps};
use crate::compile::{NodeSlot, Nodes, PortSlot};
use crate::dataplane::{Dataplane, Dump, SetSize};
use crate::error::AgentError;
use crate::fastmap::FastMap;

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
    fn names(&self) -> Result<HashMap<u64, u32>, AgentError> {
        self.names
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| AgentError::Map {
                map: MAP_DNS_NAMES,
                source,
            })
    }
    fn put_name(&mut self, key: u64, flags: u32) -> Result<(), AgentError> {
        self.names
            .insert(key, flags, 0)
            .map_err(put_err(MAP_DNS_NAMES))
    }
    fn del_name(&mut self, key: u64) -> Result<(), AgentError> {
        del_ok(MAP_DNS_NAMES, self.names.remove(&key))
    }
    fn name_filter(&self) -> Result<HashMap<u32, u64>, AgentError> {
        let mut out = HashMap::new();
        for (i, w) in self.name_filter.iter().enumerate() {
            let w = w.map_err(|source| AgentError::Map {
                map: MAP_DNS_FILTER,
                source,
            })?;
            if w != 0 {
                out.insert(i as u32, w);
            }
        }
        Ok(out)
    }
    fn put_name_filter(&mut self, word: u32, value: u64) -> Result<(), AgentError> {
        self.name_filter
            .set(word, value, 0)
            .map_err(put_err(MAP_DNS_FILTER))
    }
    fn read_config(&self) -> Result<Config, AgentError> {
        self.config.read()
    }
    fn write_config(&mut self, cfg: &Config) -> Result<(), AgentError> {
        let c = self.described(cfg, &self.config.read()?);
        self.config.write(&c)
    }
    fn put_node(&mut self, set: u8, s: &NodeSlot, v: &NodeValue) -> Result<(), AgentError> {
        let meta = self.meta_of(TableKey::of(s).idx(), v)?;
        if self.set_mut(set)?.put_node(s, meta)? {
            self.redescribe()?;
        }
        Ok(())
    }
    fn del_node(&mut self, set: u8, s: &NodeSlot) -> Result<(), AgentError> {
        if self.set_mut(set)?.del_node(s)? {
            self.redescribe()?;
        }
        Ok(())
    }
    fn node(&self, set: u8, s: &NodeSlot) -> Result<Option<NodeValue>, AgentError> {
        let Some(m) = self.sets[set as usize & 1].as_ref() else {
            return Ok(None);
        };
        let Some(meta) = m.get_node(s)? else {
            return Ok(None);
        };
        self.with_hits(|h, _| Ok(Some(dump::node_value(meta, &|slot| h.entry(slot)))))
    }
    fn set_nodes(&self, set: u8) -> Result<Nodes, AgentError> {
        let Some(m) = self.sets[set as usize & 1].as_ref() else {
            return Ok(Nodes::default());
        };
        let live = m.live_nodes()?;
        self.with_hits(|h, _| {
            Ok(live
                .into_iter()
                .map(|(slot, meta)| (slot, dump::node_value(meta, &|c| h.entry(c))))
                .collect())
        })
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
        nodes: &Nodes,
        ports: &FastMap<PortSlot, PortValue>,
    ) -> Result<usize, AgentError> {
        let pk: Vec<PortKey> = ports.keys().map(port_key).collect();
        let mut pv: Vec<PortValue> = ports.values().copied().collect();
        // Every counter slot given in one pass (the hit array grows once).
        let mut rules: Vec<[Rule; 2]> = nodes.values().map(|v| [v.to_cc, v.from_cc]).collect();
        let port_rules = pv.iter_mut().flat_map(|v| [&mut v.to_cc, &mut v.from_cc]);
        self.count_in_place(port_rules.chain(rules.iter_mut().flatten()))?;
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for ((s, v), r) in nodes.iter().zip(rules) {
            let key = TableKey::of(s);
            let m = node_meta(key.idx(), r, v.flags);
            match key {
                TableKey::V4(a, idx) => v4.push((a, idx, m)),
                TableKey::V6(a, idx) => v6.push((a, idx, m)),
            }
        }
        let m = self.set_mut(set)?;
        let write = |map: &'static str| move |source| AgentError::MapWrite { map, source };
        batch::update(m.ports.map(), &pk, &pv).map_err(write(MAP_PORTS))?;
        if m.place(&v4, &v6)? {
            // A table grew: the larger one goes in the set's outer slot.
            let m = self.sets[set as usize & 1]
                .as_ref()
                .expect("set_mut found it");
            m.install(&mut self.outer.borrow_mut(), (set & 1) as u32)?;
        }
        Ok(nodes.len() + ports.len())
    }
    fn dump(&self) -> Result<Dump, AgentError> {
        let mut d = Dump::default();
        if self.sets.iter().all(Option::is_none) {
            return Ok(d);
        }
        self.with_hits(|h, _| {
            for (set, m) in self.sets.iter().enumerate() {
                if let Some(m) = m {
                    dump::dump_set(m, set as u8, &|slot| h.entry(slot), &mut d)?;
                }
            }
            Ok(())
        })?;
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
        let mut all = Vec::with_capacity(COUNTER_ARRAY as usize);
        for i in 0..COUNTER_PAIRS {
            let per_cpu = self.counters.get(&i, 0).map_err(|source| AgentError::Map {
                map: MAP_COUNTERS,
                source,
            })?;
            let sum = |k: usize| per_cpu.iter().map(|pair| pair[k]).sum::<u64>();
            all.extend([sum(0), sum(1)]);
        }
        // Sampling results are counted per CPU only (SamplerState): they
        // go under interface slot 0.
        let sampler = self.sampler.get(&0, 0).map_err(|source| AgentError::Map {
            map: MAP_SAMPLER,
            source,
        })?;
        for (i, n) in [
            (CNT_SAMPLED, sampler.iter().map(|s| s.written).sum::<u64>()),
            (
                CNT_SAMPLE_SUPPRESSED,
                sampler.iter().map(|s| s.suppressed).sum(),
            ),
            (CNT_SAMPLE_LOST, sampler.iter().map(|s| s.lost).sum()),
        ] {
            all[i as usize] = n;
        }
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
        self.with_hits(|h, maps| h.hits(maps))
    }
    fn forget_hits(&mut self, id: u32) -> Result<(), AgentError> {
        self.with_hits(|h, maps| h.forget(maps, id))
    }
    fn prepare_counters(&mut self, ids: &[u32]) -> Result<(), AgentError> {
        self.with_hits(|h, maps| {
            h.reserve(maps, ids.iter().copied())?;
            for id in ids {
                h.assign(maps, *id)?;
            }
            Ok(())
        })
    }
    fn tidy(&mut self) -> Result<(), AgentError> {
        self.with_hits(|h, maps| h.tidy(maps))
    }
    fn filter_block(&self, set: u8, index: u32) -> Result<FilterBlock, AgentError> {
        let Some(m) = self.sets[set as usize & 1].as_ref() else {
            return Ok(FilterBlock::default());
        };
        m.filter.get(&index, 0).map_err(|source| AgentError::Map {
            map: filter_map(m.size.filter_bits),
            source,
        })
    }
    fn put_filter(&mut self, set: u8, index: u32, block: &FilterBlock) -> Result<(), AgentError> {
        let m = self.set_mut(set)?;
        let map = filter_map(m.size.filter_bits);
        m.filter.set(index, block, 0).map_err(put_err(map))
    }
    fn put_filters(
        &mut self,
        set: u8,
        blocks: &FastMap<u32, FilterBlock>,
    ) -> Result<usize, AgentError> {
        let m = self.set_mut(set)?;
        let map = filter_map(m.size.filter_bits);
        let mut mapped = mapping(map, &m.filter)?;
        let t = mapped.buckets();
        for (idx, b) in blocks {
            let slot = t.get_mut(*idx as usize).ok_or(AgentError::MapWrite {
                map,
                source: std::io::Error::from_raw_os_error(libc::E2BIG),
            })?;
            *slot = *b;
        }
        Ok(blocks.len())
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
