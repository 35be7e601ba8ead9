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
use std::collections::{BTreeMap, HashMap};

use crate::fastmap::FastMap;

use c2wall_common::*;
use c2wall_model::{Action, Entry, Family, Identity, Prefix};

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
    pub nodes: FastMap<NodeSlot, NodeValue>,
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

/// The rules of the entries listed at exactly one prefix. One identity
/// (prefix, port scope) owns one pair.
#[derive(Clone, Default, PartialEq)]
struct Own {
    addr: [Option<Rule>; 2],
    ports: BTreeMap<(u8, u16), [Option<Rule>; 2]>,
}

impl Own {
    fn is_empty(&self) -> bool {
        self.addr == [None, None] && self.ports.is_empty()
    }
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
    let mut addr = [0u8; 16];
    let o = p.octets();
    addr[..o.len()].copy_from_slice(&o);
    NodeSlot {
        family: p.family(),
        level: p.len(),
        addr,
    }
}

/// `r` (a parent's resolved state) with `o` (the child's own rules) on top.
fn fold(r: &mut Resolved, o: &Own) {
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
    // The counter slot is the kernel layer's to give (kernel/hits.rs).
    let rule = Rule {
        entry_id: id,
        counter: 0,
        action: action_code(e.action),
        _pad: [0; 3],
    };
    [e.direction.includes_to(), e.direction.includes_from()].map(|on| on.then_some(rule))
}

/// One entry change for [`Compiler::update`]: the identity and its new entry
/// with its id, or None when it is withdrawn.
pub type Change = (Identity, Option<(Entry, u32)>);

/// Slot writes for the applier: the new content of every slot a change may
/// have touched (None = the slot must not exist). The applier compares them
/// with what the kernel holds and writes only differences.
#[derive(Debug, Default)]
pub struct Patch {
    pub nodes: Vec<(NodeSlot, Option<NodeValue>)>,
    pub ports: Vec<(PortSlot, Option<PortValue>)>,
}

/// What [`Compiler::update`] changed, to put it back if the kernel write fails.
pub struct Undo(Vec<(Prefix, Option<Own>)>);

/// An update touching more slots than this is compiled in full instead.
pub const PATCH_SLOT_LIMIT: usize = 65_536;

/// The entries by prefix, kept between applies so that a small change is
/// compiled into a small patch (the slots under the changed prefixes only)
/// instead of a full table.
#[derive(Default)]
pub struct Compiler {
    own: BTreeMap<Prefix, Own>,
}

type SlotContent = Option<(NodeValue, Vec<((u8, u16), PortValue)>)>;

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
                None => node.addr = rules,
                Some(s) => {
                    node.ports.insert((s.protocol.number(), s.port), rules);
                }
            }
        }
        Compiler {
            own: grouped.into_iter().collect(),
        }
    }

    /// The rules the entry `ident` compiled into, if it is listed.
    pub fn rules_of(&self, ident: &Identity) -> Option<[Option<Rule>; 2]> {
        let o = self.own.get(&ident.prefix()?)?;
        let pair = match ident.scope {
            None => o.addr,
            Some(s) => *o.ports.get(&(s.protocol.number(), s.port))?,
        };
        (pair != [None, None]).then_some(pair)
    }

    /// The complete table.
    pub fn compile(&self) -> Compiled {
        // Walk prefixes in (family, address, length) order: an ancestor comes
        // right before its descendants, so a stack of open ancestors gives each
        // node its parent's resolved state.
        let mut resolved: Vec<(Prefix, Resolved)> = Vec::with_capacity(self.own.len());
        let mut stack: Vec<usize> = Vec::new();
        for (prefix, o) in &self.own {
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
            fold(&mut r, o);
            stack.push(resolved.len());
            resolved.push((*prefix, r));
        }

        // Expansion: later (more specific) nodes overwrite earlier ones' slots.
        let mut owner: FastMap<NodeSlot, usize> =
            FastMap::with_capacity_and_hasher(resolved.len(), Default::default());
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
            out.nodes.insert(slot, node_value(r));
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

    /// Applies `changes` and returns the patch that takes the previous table
    /// to the new one, or None when the changes reach too many slots (a short
    /// prefix with many entries under it): then [`Compiler::compile`] is the
    /// way. Either way the compiler holds the new entries; [`Compiler::revert`]
    /// with the returned undo puts the old ones back.
    pub fn update(&mut self, changes: &[Change]) -> (Option<Patch>, Undo) {
        let slots = self.slots_under(changes.iter().filter_map(|(i, _)| i.prefix()));
        let before = slots.as_ref().map(|s| self.contents(s));
        let mut undo = Vec::new();
        let mut saved = std::collections::HashSet::new();
        for (ident, new) in changes {
            let Some(p) = ident.prefix() else {
                continue;
            };
            if saved.insert(p) {
                undo.push((p, self.own.get(&p).cloned()));
            }
            let rules = match new {
                Some((e, id)) => rule_of(e, *id),
                None => [None, None],
            };
            let node = self.own.entry(p).or_default();
            match ident.scope {
                None => node.addr = rules,
                Some(s) => {
                    let k = (s.protocol.number(), s.port);
                    if rules == [None, None] {
                        node.ports.remove(&k);
                    } else {
                        node.ports.insert(k, rules);
                    }
                }
            }
            if node.is_empty() {
                self.own.remove(&p);
            }
        }
        let (Some(slots), Some(before)) = (slots, before) else {
            return (None, Undo(undo));
        };
        let after = self.contents(&slots);
        let mut patch = Patch::default();
        for s in &slots {
            let node = slot_of(s);
            let (old, new) = (&before[s], &after[s]);
            patch.nodes.push((node, new.as_ref().map(|(v, _)| *v)));
            let new_ports: HashMap<(u8, u16), PortValue> = new
                .as_ref()
                .map(|(_, p)| p.iter().copied().collect())
                .unwrap_or_default();
            let old_keys = old.iter().flat_map(|(_, p)| p.iter().map(|(k, _)| *k));
            let keys: std::collections::BTreeSet<(u8, u16)> =
                old_keys.chain(new_ports.keys().copied()).collect();
            for (proto, port) in keys {
                let slot = PortSlot { node, proto, port };
                patch
                    .ports
                    .push((slot, new_ports.get(&(proto, port)).copied()));
            }
        }
        (Some(patch), Undo(undo))
    }

    pub fn revert(&mut self, undo: Undo) {
        for (p, o) in undo.0.into_iter().rev() {
            match o {
                Some(o) => self.own.insert(p, o),
                None => self.own.remove(&p),
            };
        }
    }

    /// Every slot whose content depends on the entries at `roots`: the
    /// expansion of each root and of every listed prefix inside it. None if
    /// that is more than [`PATCH_SLOT_LIMIT`].
    fn slots_under(&self, roots: impl Iterator<Item = Prefix>) -> Option<Vec<Prefix>> {
        let mut out = std::collections::HashSet::new();
        let roots: std::collections::BTreeSet<Prefix> = roots.collect();
        for root in roots {
            let inside = self
                .own
                .range(root..=root.last_host())
                .map(|(p, _)| *p)
                .filter(|p| *p != root);
            for p in std::iter::once(root).chain(inside) {
                let n = expansion(p.family(), p.len());
                if out.len() as u64 + n > PATCH_SLOT_LIMIT as u64 {
                    return None;
                }
                let level = level_of(p.family(), p.len());
                for k in 0..n {
                    out.insert(p.subprefix(level, k as u128));
                }
            }
        }
        Some(out.into_iter().collect())
    }

    /// What each slot holds under the current entries: its owner is the
    /// longest listed prefix stored at the slot's level that contains it.
    fn contents(&self, slots: &[Prefix]) -> HashMap<Prefix, SlotContent> {
        let mut memo: HashMap<Prefix, Resolved> = HashMap::new();
        let mut out = HashMap::with_capacity(slots.len());
        for s in slots {
            let owner = lengths_at(s.family(), s.len())
                .rev()
                .map(|len| s.truncate(len))
                .find(|p| self.own.contains_key(p));
            let content = owner.map(|o| {
                let r = memo.entry(o).or_insert_with(|| self.resolve(&o));
                let ports = r
                    .ports
                    .iter()
                    .map(|(k, pair)| {
                        (
                            *k,
                            PortValue {
                                to_cc: pair[0],
                                from_cc: pair[1],
                            },
                        )
                    })
                    .collect();
                (node_value(r), ports)
            });
            out.insert(*s, content);
        }
        out
    }

    /// The resolved state of `p`: its listed ancestors' rules folded from the
    /// shortest down, then its own.
    fn resolve(&self, p: &Prefix) -> Resolved {
        let mut r = Resolved::default();
        for len in 0..=p.len() {
            if let Some(o) = self.own.get(&p.truncate(len)) {
                fold(&mut r, o);
            }
        }
        r
    }
}

/// Compiles `(entry, id)` pairs into a complete table.
pub fn compile<E: Borrow<Entry>>(entries: &[(E, u32)]) -> Compiled {
    Compiler::new(entries).compile()
}

/// The filter block index and bit of a node slot in a filter of `1 << bits`
/// blocks, or None for levels the filter does not cover (or no filter).
pub fn filter_bit(slot: &NodeSlot, bits: u8) -> Option<(u32, u32)> {
    let level = slot.level as u32;
    let bits = bits as u32;
    if bits == 0 {
        return None;
    }
    match slot.family {
        Family::V4 if level >= V4_FILTER_MIN_LEVEL => {
            let a = u32::from_be_bytes([slot.addr[0], slot.addr[1], slot.addr[2], slot.addr[3]]);
            Some((filter_block_v4(bits, a), filter_bit_v4(level, a)))
        }
        Family::V6 if level >= V6_FILTER_MIN_LEVEL => {
            let (hi, lo) = halves(&slot.addr);
            Some((filter_block_v6(bits, hi), filter_bit_v6(level, hi, lo)))
        }
        _ => None,
    }
}

/// The filter blocks (see c2wall_common::filter) that `c` needs in a filter
/// of `1 << bits` blocks: every filtered slot's bit set, nothing else.
pub fn filter_blocks(c: &Compiled, bits: u8) -> HashMap<u32, FilterBlock> {
    let mut out: HashMap<u32, FilterBlock> = HashMap::new();
    for slot in c.nodes.keys() {
        if let Some((idx, bit)) = filter_bit(slot, bits) {
            out.entry(idx).or_default().set(bit);
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
