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

use std::borrow::Borrow;
use std::collections::BTreeMap;

use c2wall_common::*;
use c2wall_model::{Action, Direction, Entry, Family, Identity, Prefix};

use crate::fastmap::FastMap;
use crate::ids::{IdKey, Numbered};

mod levels;
mod nodes;
mod own;
mod patch;
mod table;
use levels::Levels;
pub use nodes::Nodes;
use own::Own;
pub use patch::{Change, Patch, Undo, PATCH_SLOT_LIMIT};
use table::Table;

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
    pub nodes: Nodes,
    pub ports: FastMap<PortSlot, PortValue>,
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

/// What packets matching a prefix get once inheritance is applied.
#[derive(Clone, Default)]
struct Resolved {
    addr: Pair,
    ports: BTreeMap<(u8, u16), Pair>,
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

/// The prefix lengths stored at `level`, longest first.
fn lengths_at(f: Family, level: u8) -> std::ops::RangeInclusive<u8> {
    if level == 0 {
        0..=0
    } else {
        level + 1 - stride(f)..=level
    }
}

pub fn slot_of(p: &Prefix) -> NodeSlot {
    // From the address itself: `Prefix::octets` allocates, and this runs
    // once per slot of a million-entry list.
    let mut addr = [0u8; 16];
    match p.addr() {
        std::net::IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => addr = a.octets(),
    }
    NodeSlot {
        family: p.family(),
        level: p.len(),
        addr,
    }
}

/// `r` (a parent's resolved state) with `o` (the child's own rules) on top.
fn fold(r: &mut Resolved, o: &Own) {
    let addr = o.addr();
    for d in 0..2 {
        if let Some(rule) = addr[d] {
            r.addr[d] = rule;
            // This address entry is longer than any inherited port entry.
            for pair in r.ports.values_mut() {
                pair[d] = Rule::default();
            }
        }
    }
    for (k, rules) in o.ports() {
        let pair = r.ports.entry(k).or_default();
        for d in 0..2 {
            if let Some(rule) = rules[d] {
                pair[d] = rule;
            }
        }
    }
    r.ports
        .retain(|_, p| p[0].action != ACTION_NONE || p[1].action != ACTION_NONE);
}

fn node_value(r: &Resolved) -> NodeValue {
    NodeValue {
        to_cc: r.addr[0],
        from_cc: r.addr[1],
        flags: if r.ports.is_empty() {
            0
        } else {
            NODE_HAS_PORTS
        },
        _pad: 0,
    }
}

fn rule_of(e: &Entry, id: u32) -> [Option<Rule>; 2] {
    rules(e.action, e.direction, id)
}

fn rules(action: Action, direction: Direction, id: u32) -> [Option<Rule>; 2] {
    // The counter slot is the kernel layer's to give (kernel/hits.rs).
    let rule = Rule {
        entry_id: id,
        counter: 0,
        action: action_code(action),
        _pad: [0; 3],
    };
    [direction.includes_to(), direction.includes_from()].map(|on| on.then_some(rule))
}

/// The entries by prefix, kept between applies so that a small change is
/// compiled into a small patch (the slots under the changed prefixes only)
/// instead of a full table.
#[derive(Default)]
pub struct Compiler {
    own: Table,
}

impl Compiler {
    /// Identities must be unique (the sources dedupe); if one repeats, the
    /// later entry wins.
    pub fn new<E: Borrow<Entry>>(entries: &[(E, u32)]) -> Self {
        // Domain entries are enforced by resolvers, not by prefix tables.
        let mut listed: Vec<(Prefix, &Entry, u32)> = entries
            .iter()
            .filter_map(|(e, id)| Some((e.borrow().listed_prefix()?, e.borrow(), *id)))
            .collect();
        // Sorted (stably: a repeated identity keeps its later entry), the
        // map is built in one pass instead of a million tree inserts.
        listed.sort_by_key(|(p, _, _)| *p);
        let mut grouped: Vec<(Prefix, Own)> = Vec::new();
        for (prefix, e, id) in listed {
            if grouped.last().is_none_or(|(p, _)| *p != prefix) {
                grouped.push((prefix, Own::default()));
            }
            let node = &mut grouped.last_mut().expect("pushed above").1;
            let rules = rule_of(e, id);
            match e.scope {
                None => node.set_addr(rules),
                Some(s) => node.set_port((s.protocol.number(), s.port), rules),
            }
        }
        Compiler {
            own: Table::from_sorted(grouped.into_iter()),
        }
    }

    /// From the rows of a full sync's ids (in key order, each identity
    /// once): read in order, no sort.
    pub fn from_numbered(rows: &[Numbered]) -> Self {
        let mut grouped: Vec<(Prefix, Own)> = Vec::new();
        for r in rows {
            let prefix = r.key.prefix;
            if grouped.last().is_none_or(|(p, _)| *p != prefix) {
                grouped.push((prefix, Own::default()));
            }
            let node = &mut grouped.last_mut().expect("pushed above").1;
            let rules = rules(r.action, r.direction, r.id);
            match r.key.scope {
                None => node.set_addr(rules),
                Some(s) => node.set_port((s.protocol.number(), s.port), rules),
            }
        }
        Compiler {
            own: Table::from_sorted(grouped.into_iter()),
        }
    }

    /// The rules the entry `ident` compiled into, if it is listed.
    pub fn rules_of(&self, ident: &Identity) -> Option<[Option<Rule>; 2]> {
        let o = self.own.get(&ident.prefix()?)?;
        let pair = match ident.scope {
            None => o.addr(),
            Some(s) => o.port(&(s.protocol.number(), s.port))?,
        };
        (pair != [None, None]).then_some(pair)
    }

    /// The id of the entry `ident`, if it is listed.
    pub fn id_of(&self, ident: &Identity) -> Option<u32> {
        let rules = self.rules_of(ident)?;
        rules.into_iter().flatten().next().map(|r| r.entry_id)
    }

    /// Every listed entry's id, in [`IdKey`] order: the one place the ids
    /// in force are kept once a full sync has run.
    pub fn ids(&self) -> impl Iterator<Item = (IdKey, u32)> + '_ {
        self.own.iter().flat_map(|(prefix, o)| {
            o.ids().map(move |(scope, id)| {
                let key = IdKey { prefix, scope };
                (key, id)
            })
        })
    }

    /// The complete table.
    pub fn compile(&self) -> Compiled {
        // Walk prefixes in (family, address, length) order: an ancestor comes
        // right before its descendants, so a stack of open ancestors gives each
        // node its parent's resolved state.
        let mut out = Compiled::default();
        let mut levels = Levels::sized_for(self.own.keys());
        let mut stack: Vec<(Prefix, Resolved)> = Vec::new();
        // A node with port rules is remembered per slot, so that a more
        // specific node taking the slot over also takes its port slots away.
        let mut port_owner: FastMap<NodeSlot, usize> = FastMap::default();
        let mut port_keys: Vec<Vec<(u8, u16)>> = Vec::new();
        for (prefix, o) in self.own.iter() {
            let prefix = &prefix;
            while stack.last().is_some_and(|(top, _)| !top.contains(prefix)) {
                stack.pop();
            }
            let mut r = stack.last().map(|(_, r)| r.clone()).unwrap_or_default();
            fold(&mut r, o);
            let (family, level) = (prefix.family(), level_of(prefix.family(), prefix.len()));
            let bit = 1u32 << (level / stride(family));
            match family {
                Family::V4 => out.v4_levels |= bit,
                Family::V6 => out.v6_levels |= bit,
            }
            let value = node_value(&r);
            let owner = (!r.ports.is_empty()).then(|| {
                port_keys.push(r.ports.keys().copied().collect());
                port_keys.len() - 1
            });
            let slots = (0..expansion(family, prefix.len()))
                .map(|k| slot_of(&prefix.subprefix(level, k as u128)));
            levels.write(slots, value, |slot, old| {
                if old.is_some_and(|v| v.flags & NODE_HAS_PORTS != 0) {
                    if let Some(j) = port_owner.remove(&slot) {
                        for &(proto, port) in &port_keys[j] {
                            out.ports.remove(&PortSlot {
                                node: slot,
                                proto,
                                port,
                            });
                        }
                    }
                }
                let Some(owner) = owner else {
                    return;
                };
                port_owner.insert(slot, owner);
                for (&(proto, port), pair) in &r.ports {
                    let port_slot = PortSlot {
                        node: slot,
                        proto,
                        port,
                    };
                    let value = PortValue {
                        to_cc: pair[0],
                        from_cc: pair[1],
                    };
                    out.ports.insert(port_slot, value);
                }
            });
            stack.push((*prefix, r));
        }
        out.nodes = levels.into_nodes();
        out
    }
}

/// Compiles `(entry, id)` pairs into a complete table.
pub fn compile<E: Borrow<Entry>>(entries: &[(E, u32)]) -> Compiled {
    Compiler::new(entries).compile()
}

/// The filter block index and mark of a node slot in a filter of `1 << bits`
/// blocks, or None for levels the filter does not cover (or no filter).
pub fn filter_mark(slot: &NodeSlot, bits: u8) -> Option<(u32, u32)> {
    let level = slot.level as u32;
    let bits = bits as u32;
    if bits == 0 {
        return None;
    }
    match slot.family {
        Family::V4 if level >= V4_FILTER_MIN_LEVEL => {
            let a = u32::from_be_bytes([slot.addr[0], slot.addr[1], slot.addr[2], slot.addr[3]]);
            Some((filter_block_v4(bits, a), filter_mark_v4(level, a)))
        }
        Family::V6 if level >= V6_FILTER_MIN_LEVEL => {
            let (hi, lo) = halves(&slot.addr);
            Some((filter_block_v6(bits, hi), filter_mark_v6(level, hi, lo)))
        }
        _ => None,
    }
}

/// The filter blocks (see c2wall_common::filter) that `c` needs in a filter
/// of `1 << bits` blocks: every filtered slot's mark set, nothing else.
pub fn filter_blocks(c: &Compiled, bits: u8) -> FastMap<u32, FilterBlock> {
    let mut out: FastMap<u32, FilterBlock> = FastMap::default();
    for slot in c.nodes.keys() {
        if let Some((idx, mark)) = filter_mark(slot, bits) {
            out.entry(idx).or_default().set(mark);
        }
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
