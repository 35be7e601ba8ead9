//! Reading a rule set back: its slots (for adoption) and the counter slots
//! its rules carry (for the hit-counter table).

use c2wall_common::*;
use c2wall_model::Family;

use super::sets::SetMaps;
use crate::compile::{NodeSlot, PortSlot};
use crate::dataplane::Dump;
use crate::error::AgentError;

fn err(map: &'static str) -> impl Fn(aya::maps::MapError) -> AgentError {
    move |source| AgentError::Map { map, source }
}

/// A rule as the compiler writes it: without the counter slot, which only
/// the kernel copy carries.
fn bare(mut r: Rule) -> Rule {
    r.counter = 0;
    r
}

fn bare_node(v: NodeValue) -> NodeValue {
    NodeValue {
        to_cc: bare(v.to_cc),
        from_cc: bare(v.from_cc),
        ..v
    }
}

fn bare_port(v: PortValue) -> PortValue {
    PortValue {
        to_cc: bare(v.to_cc),
        from_cc: bare(v.from_cc),
    }
}

/// Appends set `set`'s slots to `d`, rules without their counter slots.
pub fn dump_set(m: &SetMaps, set: u8, d: &mut Dump) -> Result<(), AgentError> {
    for kv in m.nodes_v4.iter() {
        let (k, v) = kv.map_err(err(MAP_NODES_V4))?;
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&k.addr);
        let slot = NodeSlot {
            family: Family::V4,
            level: k.level,
            addr,
        };
        d.nodes.push((set, slot, bare_node(v)));
    }
    for kv in m.nodes_v6.iter() {
        let (k, v) = kv.map_err(err(MAP_NODES_V6))?;
        let slot = NodeSlot {
            family: Family::V6,
            level: k.level,
            addr: k.addr,
        };
        d.nodes.push((set, slot, bare_node(v)));
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
        d.ports.push((set, slot, bare_port(v)));
    }
    Ok(())
}

/// Every `(entry id, counter slot)` the set's rules carry.
pub fn counter_slots(m: &SetMaps, out: &mut Vec<(u32, u32)>) -> Result<(), AgentError> {
    let mut rules = |rs: [Rule; 2]| {
        for r in rs {
            if r.action != ACTION_NONE {
                out.push((r.entry_id, r.counter));
            }
        }
    };
    for kv in m.nodes_v4.iter() {
        let (_, v) = kv.map_err(err(MAP_NODES_V4))?;
        rules([v.to_cc, v.from_cc]);
    }
    for kv in m.nodes_v6.iter() {
        let (_, v) = kv.map_err(err(MAP_NODES_V6))?;
        rules([v.to_cc, v.from_cc]);
    }
    for kv in m.ports.iter() {
        let (_, v) = kv.map_err(err(MAP_PORTS))?;
        rules([v.to_cc, v.from_cc]);
    }
    Ok(())
}
