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

fn bare_port(v: PortValue) -> PortValue {
    PortValue {
        to_cc: bare(v.to_cc),
        from_cc: bare(v.from_cc),
    }
}

/// One side of a meta word as the compiler wrote it, its entry id read
/// back through its counter slot.
fn side_rule((action, counter): (u8, u32), id_of: &impl Fn(u32) -> u32) -> Rule {
    if action == ACTION_NONE {
        return Rule::default();
    }
    Rule {
        entry_id: id_of(counter),
        counter: 0,
        action,
        _pad: [0; 3],
    }
}

/// The slot value a meta word stands for.
pub(super) fn node_value(m: u64, id_of: &impl Fn(u32) -> u32) -> NodeValue {
    NodeValue {
        to_cc: side_rule(meta_to(m), id_of),
        from_cc: side_rule(meta_from(m), id_of),
        flags: if m & META_PORTS != 0 {
            NODE_HAS_PORTS
        } else {
            0
        },
        _pad: 0,
    }
}

/// Appends set `set`'s slots to `d`, rules without their counter slots;
/// `id_of` names the entry of a counter slot.
pub fn dump_set(
    m: &SetMaps,
    set: u8,
    id_of: &impl Fn(u32) -> u32,
    d: &mut Dump,
) -> Result<(), AgentError> {
    for (slot, meta) in m.live_nodes()? {
        d.nodes.push((set, slot, node_value(meta, id_of)));
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
