//! [`MemDataplane`]: the kernel maps' semantics in memory, for tests and
//! dry runs.

use std::collections::HashMap;

use c2wall_common::*;
use c2wall_model::Prefix;

use super::{Dataplane, Dump, SetSize};
use crate::compile::{NodeSlot, PortSlot};
use crate::error::AgentError;

/// In-memory maps with the same semantics, for tests and dry runs.
#[derive(Default, Debug, Clone)]
pub struct MemDataplane {
    pub config: Config,
    pub nodes: HashMap<(u8, NodeSlot), NodeValue>,
    pub ports: HashMap<(u8, PortSlot), PortValue>,
    pub allow: Vec<Prefix>,
    pub counters: Vec<u64>,
    pub hits: HashMap<u32, u64>,
    /// Per set: its filter blocks.
    pub filter: [HashMap<u32, FilterBlock>; 2],
    pub sizes: [SetSize; 2],
    pub ifslots: HashMap<u32, u32>,
    pub names: HashMap<u64, u32>,
    pub name_filter: HashMap<u32, u64>,
    /// Fail the n-th write from now (0 = next), to test error paths.
    pub fail_after: Option<usize>,
    pub caps: (usize, usize, usize),
}

impl MemDataplane {
    pub fn new() -> Self {
        MemDataplane {
            counters: vec![0; COUNTER_SLOTS as usize],
            caps: (
                DEFAULT_NODES_V4_CAPACITY as usize,
                DEFAULT_NODES_V6_CAPACITY as usize,
                DEFAULT_PORTS_CAPACITY as usize,
            ),
            ..Default::default()
        }
    }

    /// The active set as a compiled table, to compare against the compiler.
    pub fn active(&self) -> crate::compile::Compiled {
        let set = self.config.active_set as u8;
        crate::compile::Compiled {
            nodes: self
                .nodes
                .iter()
                .filter(|((s, _), _)| *s == set)
                .map(|((_, k), v)| (*k, *v))
                .collect(),
            ports: self
                .ports
                .iter()
                .filter(|((s, _), _)| *s == set)
                .map(|((_, k), v)| (*k, *v))
                .collect(),
            v4_levels: self.config.v4_levels[set as usize],
            v6_levels: self.config.v6_levels[set as usize],
        }
    }

    fn write(&mut self) -> Result<(), AgentError> {
        match self.fail_after {
            Some(0) => {
                self.fail_after = None;
                Err(AgentError::MapWrite {
                    map: "mem",
                    source: std::io::Error::from_raw_os_error(libc::E2BIG),
                })
            }
            Some(n) => {
                self.fail_after = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Dataplane for MemDataplane {
    fn read_config(&self) -> Result<Config, AgentError> {
        Ok(self.config)
    }
    fn names(&self) -> Result<HashMap<u64, u32>, AgentError> {
        Ok(self.names.clone())
    }
    fn put_name(&mut self, key: u64, flags: u32) -> Result<(), AgentError> {
        self.write()?;
        self.names.insert(key, flags);
        Ok(())
    }
    fn del_name(&mut self, key: u64) -> Result<(), AgentError> {
        self.write()?;
        self.names.remove(&key);
        Ok(())
    }
    fn name_filter(&self) -> Result<HashMap<u32, u64>, AgentError> {
        Ok(self.name_filter.clone())
    }
    fn put_name_filter(&mut self, word: u32, value: u64) -> Result<(), AgentError> {
        self.write()?;
        if value == 0 {
            self.name_filter.remove(&word);
        } else {
            self.name_filter.insert(word, value);
        }
        Ok(())
    }
    fn write_config(&mut self, cfg: &Config) -> Result<(), AgentError> {
        self.write()?;
        self.config = *cfg;
        Ok(())
    }
    fn put_node(&mut self, set: u8, slot: &NodeSlot, v: &NodeValue) -> Result<(), AgentError> {
        self.write()?;
        // Like the kernel: a new key in a full map is E2BIG.
        let size = self.sizes[set as usize & 1];
        let cap = match slot.family {
            c2wall_model::Family::V4 => size.nodes_v4,
            c2wall_model::Family::V6 => size.nodes_v6,
        } as usize;
        let used = self
            .nodes
            .keys()
            .filter(|(s, k)| *s == set && k.family == slot.family)
            .count();
        if used >= cap && !self.nodes.contains_key(&(set, *slot)) {
            return Err(AgentError::MapWrite {
                map: "mem",
                source: std::io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        self.nodes.insert((set, *slot), *v);
        Ok(())
    }
    fn del_node(&mut self, set: u8, slot: &NodeSlot) -> Result<(), AgentError> {
        self.write()?;
        self.nodes.remove(&(set, *slot));
        Ok(())
    }
    fn node(&self, set: u8, slot: &NodeSlot) -> Result<Option<NodeValue>, AgentError> {
        Ok(self.nodes.get(&(set, *slot)).copied())
    }
    fn put_port(&mut self, set: u8, slot: &PortSlot, v: &PortValue) -> Result<(), AgentError> {
        self.write()?;
        let used = self.ports.keys().filter(|(s, _)| *s == set).count();
        if used >= self.sizes[set as usize & 1].ports as usize
            && !self.ports.contains_key(&(set, *slot))
        {
            return Err(AgentError::MapWrite {
                map: "mem",
                source: std::io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        self.ports.insert((set, *slot), *v);
        Ok(())
    }
    fn del_port(&mut self, set: u8, slot: &PortSlot) -> Result<(), AgentError> {
        self.write()?;
        self.ports.remove(&(set, *slot));
        Ok(())
    }
    fn dump(&self) -> Result<Dump, AgentError> {
        Ok(Dump {
            nodes: self.nodes.iter().map(|((s, k), v)| (*s, *k, *v)).collect(),
            ports: self.ports.iter().map(|((s, k), v)| (*s, *k, *v)).collect(),
        })
    }
    fn allowlist(&self) -> Result<Vec<Prefix>, AgentError> {
        Ok(self.allow.clone())
    }
    fn put_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        self.write()?;
        if !self.allow.contains(p) {
            self.allow.push(*p);
        }
        Ok(())
    }
    fn del_allow(&mut self, p: &Prefix) -> Result<(), AgentError> {
        self.write()?;
        self.allow.retain(|a| a != p);
        Ok(())
    }
    fn counters(&self) -> Result<Vec<u64>, AgentError> {
        Ok(self.counters.clone())
    }
    fn counters_by_slot(&self) -> Result<Vec<Vec<u64>>, AgentError> {
        Ok(vec![self.counters.clone()])
    }
    fn iface_slot(&self, ifindex: u32) -> Result<u32, AgentError> {
        Ok(self
            .ifslots
            .get(&(ifindex % IFINDEX_BUCKETS))
            .copied()
            .unwrap_or(0))
    }
    fn iface_slots_used(&self) -> Result<Vec<u32>, AgentError> {
        Ok(self.ifslots.values().copied().collect())
    }
    fn set_iface_slot(&mut self, ifindex: u32, slot: u32) -> Result<(), AgentError> {
        self.ifslots.insert(ifindex % IFINDEX_BUCKETS, slot);
        Ok(())
    }
    fn hits(&self) -> Result<HashMap<u32, u64>, AgentError> {
        Ok(self.hits.clone())
    }
    fn forget_hits(&mut self, id: u32) -> Result<(), AgentError> {
        self.hits.remove(&id);
        Ok(())
    }
    fn filter_block(&self, set: u8, index: u32) -> Result<FilterBlock, AgentError> {
        Ok(self.filter[set as usize & 1]
            .get(&index)
            .copied()
            .unwrap_or_default())
    }
    fn put_filter(&mut self, set: u8, index: u32, block: &FilterBlock) -> Result<(), AgentError> {
        self.write()?;
        let s = set as usize & 1;
        if index >= 1u32 << self.sizes[s].filter_bits {
            return Err(AgentError::MapWrite {
                map: "mem",
                source: std::io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        if *block == FilterBlock::default() {
            self.filter[s].remove(&index);
        } else {
            self.filter[s].insert(index, *block);
        }
        Ok(())
    }
    fn reset_set(&mut self, set: u8, size: SetSize) -> Result<(), AgentError> {
        self.write()?;
        self.nodes.retain(|(s, _), _| *s != set);
        self.ports.retain(|(s, _), _| *s != set);
        self.filter[set as usize & 1].clear();
        self.sizes[set as usize & 1] = size;
        Ok(())
    }
    fn set_size(&self, set: u8) -> SetSize {
        self.sizes[set as usize & 1]
    }
    fn capacity(&self) -> (usize, usize, usize) {
        self.caps
    }
}
