//! A rule set's node slots as one sorted vector: the compiler writes it in
//! order (no hashing of a million slots), the kernel layer walks it once,
//! and a lookup is a binary search.

use c2wall_common::NodeValue;

use super::NodeSlot;

/// Node slots with their values, sorted by slot, one value per slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nodes(Vec<(NodeSlot, NodeValue)>);

type Pair<'a> = (&'a NodeSlot, &'a NodeValue);

impl Nodes {
    /// Takes slots that are already sorted and unique (the compiler's
    /// output); checked in debug builds.
    pub(super) fn from_sorted(v: Vec<(NodeSlot, NodeValue)>) -> Nodes {
        debug_assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        Nodes(v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, slot: &NodeSlot) -> Option<&NodeValue> {
        let i = self.0.binary_search_by(|(s, _)| s.cmp(slot)).ok()?;
        Some(&self.0[i].1)
    }

    pub fn contains_key(&self, slot: &NodeSlot) -> bool {
        self.get(slot).is_some()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Pair<'_>> + '_ {
        self.0.iter().map(|(s, v)| (s, v))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &NodeSlot> + '_ {
        self.0.iter().map(|(s, _)| s)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &NodeValue> + '_ {
        self.0.iter().map(|(_, v)| v)
    }

    /// These slots with `changes` made (a value written, None deleted; of
    /// a slot changed twice, the later change counts): one merge, however
    /// many changes.
    pub fn patched(
        &self,
        changes: impl IntoIterator<Item = (NodeSlot, Option<NodeValue>)>,
    ) -> Nodes {
        let mut changes: Vec<_> = changes.into_iter().collect();
        changes.sort_by_key(|(s, _)| *s);
        let mut out = Vec::with_capacity(self.0.len() + changes.len());
        let mut old = self.0.iter().copied().peekable();
        let mut i = 0;
        while i < changes.len() {
            let slot = changes[i].0;
            // The last change of this slot wins.
            while i + 1 < changes.len() && changes[i + 1].0 == slot {
                i += 1;
            }
            while let Some(kept) = old.next_if(|(s, _)| *s < slot) {
                out.push(kept);
            }
            old.next_if(|(s, _)| *s == slot);
            if let Some(v) = changes[i].1 {
                out.push((slot, v));
            }
            i += 1;
        }
        out.extend(old);
        Nodes(out)
    }
}

/// Any order; of a slot given twice, the later value counts.
impl FromIterator<(NodeSlot, NodeValue)> for Nodes {
    fn from_iter<I: IntoIterator<Item = (NodeSlot, NodeValue)>>(iter: I) -> Nodes {
        Nodes::default().patched(iter.into_iter().map(|(s, v)| (s, Some(v))))
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = Pair<'a>;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (NodeSlot, NodeValue)>,
        fn(&'a (NodeSlot, NodeValue)) -> Pair<'a>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(s, v)| (s, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::Family;
    use std::collections::BTreeMap;

    fn slot(i: u8) -> NodeSlot {
        let mut addr = [0u8; 16];
        addr[0] = i;
        NodeSlot {
            family: Family::V4,
            level: 32,
            addr,
        }
    }

    fn value(i: u32) -> NodeValue {
        NodeValue {
            flags: i,
            ..Default::default()
        }
    }

    #[test]
    fn patched_matches_a_map_with_the_changes_made_in_order() {
        // Every mix of write, delete and repeat over a few slots, against a
        // BTreeMap made the slow way.
        let base: Nodes = [1, 3, 5, 7]
            .map(|i| (slot(i), value(i as u32)))
            .into_iter()
            .collect();
        let changes = [
            (slot(0), Some(value(10))),
            (slot(3), None),
            (slot(5), Some(value(50))),
            (slot(8), Some(value(80))),
            (slot(5), None),
            (slot(4), Some(value(40))),
            (slot(8), Some(value(81))),
            (slot(9), None),
        ];
        let mut want: BTreeMap<NodeSlot, NodeValue> = base.iter().map(|(s, v)| (*s, *v)).collect();
        for (s, v) in changes {
            match v {
                Some(v) => want.insert(s, v),
                None => want.remove(&s),
            };
        }
        let got = base.patched(changes);
        assert_eq!(
            got.iter().map(|(s, v)| (*s, *v)).collect::<Vec<_>>(),
            want.into_iter().collect::<Vec<_>>()
        );
        assert_eq!(got.get(&slot(8)), Some(&value(81)));
        assert!(!got.contains_key(&slot(5)));
    }
}
