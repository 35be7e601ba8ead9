//! Incremental compiling: a change of a few entries becomes the writes of
//! the slots under the changed prefixes (a [`Patch`]), not a full table.

use std::collections::HashMap;

use c2wall_common::{NodeValue, PortValue};
use c2wall_model::{Entry, Identity, Prefix};

use super::{expansion, fold, lengths_at, level_of, node_value, rule_of, slot_of};
use super::{Compiler, NodeSlot, Own, PortSlot, Resolved};

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

type SlotContent = Option<(NodeValue, Vec<((u8, u16), PortValue)>)>;

impl Compiler {
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
            let node = self.own.entry(p);
            match ident.scope {
                None => node.set_addr(rules),
                Some(s) => node.set_port((s.protocol.number(), s.port), rules),
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
            }
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
                .range(root, root.last_host())
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
