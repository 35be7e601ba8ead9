//! The compiler's output as it is written: a sorted vector of slots per
//! (family, level), built by appends and in-place overwrites, no hashing.
//!
//! Why appends suffice: prefixes come in (family, address, length) order,
//! and two prefixes either nest or are disjoint. A prefix disjoint from
//! every earlier one at its level lies after all of them, so its slots go
//! at the end. One inside an earlier one at its level (a more specific
//! prefix stored at the same level) finds that ancestor's slots already
//! written, consecutive, and overwrites its share of them.

use c2wall_common::NodeValue;
use c2wall_model::{Family, Prefix};

use super::{expansion, level_of, NodeSlot, Nodes};

/// Levels per family, indexed by the level itself (0..=128).
const PER_FAMILY: usize = 129;

pub(super) struct Levels(Vec<Vec<(NodeSlot, NodeValue)>>);

fn index(family: Family, level: u8) -> usize {
    (family == Family::V6) as usize * PER_FAMILY + level as usize
}

impl Levels {
    /// Room for every slot the prefixes expand into (fewer are written when
    /// prefixes nest), so no level grows by copying.
    pub(super) fn sized_for(prefixes: impl Iterator<Item = Prefix>) -> Levels {
        let mut room = vec![0usize; 2 * PER_FAMILY];
        for p in prefixes {
            let (f, len) = (p.family(), p.len());
            room[index(f, level_of(f, len))] += expansion(f, len) as usize;
        }
        Levels(room.into_iter().map(Vec::with_capacity).collect())
    }

    /// Writes `value` into `slots` (one prefix's expansion: one level, in
    /// address order) and tells `seen` each slot with what it held before.
    pub(super) fn write(
        &mut self,
        slots: impl Iterator<Item = NodeSlot>,
        value: NodeValue,
        mut seen: impl FnMut(NodeSlot, Option<NodeValue>),
    ) {
        let mut slots = slots.peekable();
        let Some(first) = slots.peek().copied() else {
            return;
        };
        let v = &mut self.0[index(first.family, first.level)];
        let start = match v.last() {
            Some((last, _)) if *last >= first => v.partition_point(|(s, _)| *s < first),
            _ => v.len(),
        };
        for (at, slot) in (start..).zip(slots) {
            match v.get_mut(at) {
                Some((s, held)) if *s == slot => {
                    let old = std::mem::replace(held, value);
                    seen(slot, Some(old));
                }
                // At the end, a push. Inside (not expected, see the module
                // comment) an insert, which keeps the vector sorted anyway:
                // every slot before `at` is smaller, none at it is.
                _ => {
                    v.insert(at, (slot, value));
                    seen(slot, None);
                }
            }
        }
    }

    /// All levels in slot order: IPv4 before IPv6, each level ascending.
    pub(super) fn into_nodes(self) -> Nodes {
        let mut all = Vec::with_capacity(self.0.iter().map(Vec::len).sum());
        for level in self.0 {
            all.extend(level);
        }
        Nodes::from_sorted(all)
    }
}

#[cfg(test)]
mod tests {
    use c2wall_common::NODE_HAS_PORTS;
    use c2wall_model::Entry;

    use crate::compile::{compile, slot_of};

    fn list(text: &str) -> Vec<Entry> {
        let (entries, bad) = crate::source::file::parse_blocklist("t", text);
        assert!(bad.is_empty());
        entries.into_iter().map(|(_, e)| e).collect()
    }

    #[test]
    fn a_more_specific_prefix_at_the_same_level_overwrites_its_share_and_its_ports() {
        // /30 and /31 are stored at level 32, as 4 and 2 slots; the /32 and
        // the /31 inside take slots over, and the /30's port rules leave
        // the slots an address entry now owns.
        let entries = list("10.0.0.0/30 tcp 80\n10.0.0.2/31\n10.0.0.1\n10.0.0.8/30\n");
        let with_ids: Vec<(&Entry, u32)> = entries.iter().zip(1..).collect();
        let c = compile(&with_ids);
        let got: Vec<(String, u32, bool)> = c
            .nodes
            .iter()
            .map(|(s, v)| {
                let addr = std::net::Ipv4Addr::new(s.addr[0], s.addr[1], s.addr[2], s.addr[3]);
                let id = v.to_cc.entry_id.max(v.from_cc.entry_id);
                (addr.to_string(), id, v.flags & NODE_HAS_PORTS != 0)
            })
            .collect();
        let want = [
            ("10.0.0.0", 0, true),
            ("10.0.0.1", 3, false),
            ("10.0.0.2", 2, false),
            ("10.0.0.3", 2, false),
            ("10.0.0.8", 4, false),
            ("10.0.0.9", 4, false),
            ("10.0.0.10", 4, false),
            ("10.0.0.11", 4, false),
        ]
        .map(|(a, id, ports)| (a.to_string(), id, ports));
        assert_eq!(got, want);
        let port_nodes: Vec<_> = c.ports.keys().map(|p| p.node).collect();
        assert_eq!(port_nodes, [slot_of(&"10.0.0.0/32".parse().unwrap())]);
    }
}
