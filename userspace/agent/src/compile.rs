//! Compiles blocklist entries into the slots the XDP program looks up.
//!
//! The program probes one hash slot per expansion level and trusts the first hit
//! to be the complete answer for that address. So everything longest-prefix
//! matching needs is resolved here:
//! - inheritance: a slot carries, per direction, the rule of the longest address
//!   entry covering it, and the port rules that are longer than that;
//! - expansion: a prefix is written at the next level up (IPv4 stride 4, IPv6
//!   stride 8), as 2^(level - len) slots, more specific prefixes overwriting less
//!   specific ones at the same level.
//!
//! Slots here are independent of the kernel's double-buffer set; the applier adds
//! the set when writing.

use std::collections::{BTreeMap, HashMap};

use c2wall_common::*;
use c2wall_model::{Action, Entry, Family, Prefix};

/// One node slot, without the rule-set index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeSlot {
    pub family: Family,
    pub level: u8,
    /// Network byte order; IPv4 uses the first four bytes.
    pub addr: [u8; 16],
}

/// One port slot: a node slot plus the C&C-side protocol number and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSlot {
    pub node: NodeSlot,
    pub proto: u8,
    pub port: u16,
}

/// The complete content of one rule set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    pub nodes: HashMap<NodeSlot, NodeValue>,
    pub ports: HashMap<PortSlot, PortValue>,
    /// Bit i: IPv4 level i*V4_STRIDE has slots.
    pub v4_levels: u32,
    /// Bit i: IPv6 level i*V6_STRIDE has slots.
    pub v6_levels: u32,
}

impl Compiled {
    pub fn slot_counts(&self) -> (usize, usize, usize) {
        let v4 = self.nodes.keys().filter(|s| s.family == Family::V4).count();
        (v4, self.nodes.len() - v4, self.ports.len())
    }
}

/// Per direction: [to_cc, from_cc].
type Pair = [Rule; 2];

#[derive(Clone, Default)]
struct Resolved {
    addr: Pair,
    ports: BTreeMap<(u8, u16), Pair>,
}

#[derive(Default)]
struct Own {
    addr: [Option<Rule>; 2],
    ports: BTreeMap<(u8, u16), [Option<Rule>; 2]>,
}

fn action_code(a: Action) -> u8 {
    match a {
        Action::Drop => ACTION_DROP,
        Action::Monitor => ACTION_MONITOR,
    }
}

pub fn stride(f: Family) -> u8 {
    match f {
        Family::V4 => V4_STRIDE as u8,
        Family::V6 => V6_STRIDE as u8,
    }
}

/// The level a prefix of length `len` is stored at.
pub fn level_of(f: Family, len: u8) -> u8 {
    let s = stride(f);
    len.div_ceil(s) * s
}

/// Number of slots a prefix of length `len` expands into.
pub fn expansion(f: Family, len: u8) -> u64 {
    1u64 << (level_of(f, len) - len)
}

pub fn slot_of(p: &Prefix) -> NodeSlot {
    let mut addr = [0u8; 16];
    let o = p.octets();
    addr[..o.len()].copy_from_slice(&o);
    NodeSlot {
        family: p.family(),
        level: p.len(),
        addr,
    }
}

/// Compiles `(entry, id)` pairs. Identities must be unique (the sources dedupe);
/// if one repeats, the later entry wins.
pub fn compile(entries: &[(Entry, u32)]) -> Compiled {
    let mut own: BTreeMap<Prefix, Own> = BTreeMap::new();
    for (e, id) in entries {
        let rule = Rule {
            entry_id: *id,
            action: action_code(e.action),
            _pad: [0; 3],
        };
        let node = own.entry(e.prefix).or_default();
        let dirs = [e.direction.includes_to(), e.direction.includes_from()];
        let target = match e.scope {
            None => &mut node.addr,
            Some(s) => node.ports.entry((s.protocol.number(), s.port)).or_default(),
        };
        for d in 0..2 {
            if dirs[d] {
                target[d] = Some(rule);
            }
        }
    }

    // Walk prefixes in (family, address, length) order: an ancestor comes right
    // before its descendants, so a stack of open ancestors gives each node its
    // parent's resolved state.
    let mut resolved: Vec<(Prefix, Resolved)> = Vec::with_capacity(own.len());
    let mut stack: Vec<usize> = Vec::new();
    for (prefix, o) in &own {
        while let Some(&top) = stack.last() {
            if resolved[top].0.contains(prefix) {
                break;
            }
            stack.pop();
        }
        let mut r = stack
            .last()
            .map(|&i| resolved[i].1.clone())
            .unwrap_or_default();
        for d in 0..2 {
            if let Some(rule) = o.addr[d] {
                r.addr[d] = rule;
                // This address entry is longer than any inherited port entry.
                for pair in r.ports.values_mut() {
                    pair[d] = Rule::default();
                }
            }
        }
        for (k, rules) in &o.ports {
            let pair = r.ports.entry(*k).or_default();
            for d in 0..2 {
                if let Some(rule) = rules[d] {
                    pair[d] = rule;
                }
            }
        }
        r.ports
            .retain(|_, p| p[0].action != ACTION_NONE || p[1].action != ACTION_NONE);
        stack.push(resolved.len());
        resolved.push((*prefix, r));
    }

    // Expansion: later (more specific) nodes overwrite earlier ones' slots.
    let mut owner: HashMap<NodeSlot, usize> = HashMap::with_capacity(resolved.len());
    for (i, (p, _)) in resolved.iter().enumerate() {
        let level = level_of(p.family(), p.len());
        for k in 0..expansion(p.family(), p.len()) {
            owner.insert(slot_of(&p.subprefix(level, k as u128)), i);
        }
    }

    let mut out = Compiled::default();
    out.nodes.reserve(owner.len());
    for (slot, i) in owner {
        let r = &resolved[i].1;
        let bit = 1u32 << (slot.level / stride(slot.family));
        match slot.family {
            Family::V4 => out.v4_levels |= bit,
            Family::V6 => out.v6_levels |= bit,
        }
        out.nodes.insert(
            slot,
            NodeValue {
                to_cc: r.addr[0],
                from_cc: r.addr[1],
                flags: if r.ports.is_empty() {
                    0
                } else {
                    NODE_HAS_PORTS
                },
                _pad: 0,
            },
        );
        for (&(proto, port), pair) in &r.ports {
            out.ports.insert(
                PortSlot {
                    node: slot,
                    proto,
                    port,
                },
                PortValue {
                    to_cc: pair[0],
                    from_cc: pair[1],
                },
            );
        }
    }
    out
}

/// The filter blocks (see c2wall_common::filter) that `c` needs in rule set
/// `set`: every filtered slot's bit set, nothing else.
pub fn filter_blocks(c: &Compiled, set: u8) -> HashMap<u32, FilterBlock> {
    let mut out: HashMap<u32, FilterBlock> = HashMap::new();
    for slot in c.nodes.keys() {
        let level = slot.level as u32;
        let (idx, bit) = match slot.family {
            Family::V4 if level >= V4_FILTER_MIN_LEVEL => {
                let a =
                    u32::from_be_bytes([slot.addr[0], slot.addr[1], slot.addr[2], slot.addr[3]]);
                (filter_block_v4(set as u32, a), filter_bit_v4(level, a))
            }
            Family::V6 if level >= V6_FILTER_MIN_LEVEL => {
                let (hi, lo) = halves(&slot.addr);
                (
                    filter_block_v6(set as u32, hi),
                    filter_bit_v6(level, hi, lo),
                )
            }
            _ => continue,
        };
        out.entry(idx).or_default().set(bit);
    }
    out
}

pub fn halves(a: &[u8; 16]) -> (u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&a[..8]);
    lo.copy_from_slice(&a[8..]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}
