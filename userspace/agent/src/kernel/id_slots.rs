//! Entry id -> hit-counter slot: the other way from the hit array's id
//! block (slot -> id), for writing an entry's rules and freeing its slot.
//!
//! Ids are given in rising order and never reused, so the listed ones
//! mostly sit in a range not much wider than their number: then a vector
//! indexed by `id - base` holds the slots, 4 bytes an id in the range
//! (a hash map takes 9 bytes a bucket, 10-19 bytes an id). After long
//! churn, when the range has grown to more than twice the number listed,
//! the ids move to a hash map; a full load moves them back if they fit.

use crate::fastmap::FastMap;

/// Slack in the range before a dense table is trimmed or turned sparse, so
/// a small list does not flip between the two.
const SLACK: usize = 4096;

#[derive(Debug)]
pub(super) enum IdSlots {
    /// `slots[id - base]`, 0 where an id has no slot; `len` ids have one.
    Dense {
        base: u32,
        slots: Vec<u32>,
        len: usize,
    },
    Sparse(FastMap<u32, u32>),
}

impl Default for IdSlots {
    fn default() -> Self {
        IdSlots::Dense {
            base: 0,
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl IdSlots {
    /// A table of `pairs` (id, slot), in any order.
    pub(super) fn of(pairs: Vec<(u32, u32)>) -> IdSlots {
        let mut t = IdSlots::Sparse(pairs.into_iter().collect());
        t.reserve(0, 0);
        t
    }

    pub(super) fn len(&self) -> usize {
        match self {
            IdSlots::Dense { len, .. } => *len,
            IdSlots::Sparse(m) => m.len(),
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<u32> {
        match self {
            IdSlots::Dense { base, slots, .. } => {
                let s = *slots.get(id.checked_sub(*base)? as usize)?;
                (s != 0).then_some(s)
            }
            IdSlots::Sparse(m) => m.get(&id).copied(),
        }
    }

    /// (id, slot) of every id with a slot.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (u32, u32)> + '_> {
        match self {
            IdSlots::Dense { base, slots, .. } => Box::new(
                (*base..)
                    .zip(slots.iter().copied())
                    .filter(|(_, s)| *s != 0),
            ),
            IdSlots::Sparse(m) => Box::new(m.iter().map(|(id, s)| (*id, *s))),
        }
    }

    /// Gives `id` slot `slot` (not 0).
    pub(super) fn insert(&mut self, id: u32, slot: u32) {
        debug_assert_ne!(slot, 0);
        match self {
            IdSlots::Dense { base, slots, len } => {
                if slots.is_empty() {
                    *base = id;
                }
                if id < *base {
                    // An id below the range (an adopted table read in any
                    // order): the range grows at the front.
                    let grow = (*base - id) as usize;
                    slots.splice(0..0, std::iter::repeat_n(0, grow));
                    *base = id;
                }
                let i = (id - *base) as usize;
                if i >= slots.len() {
                    slots.resize(i + 1, 0);
                }
                if slots[i] == 0 {
                    *len += 1;
                }
                slots[i] = slot;
            }
            IdSlots::Sparse(m) => {
                m.insert(id, slot);
            }
        }
        self.keep_dense_enough();
    }

    /// Takes `id`'s slot away, returning it.
    pub(super) fn remove(&mut self, id: u32) -> Option<u32> {
        let slot = match self {
            IdSlots::Dense { base, slots, len } => {
                let s = slots.get_mut(id.checked_sub(*base)? as usize)?;
                let slot = std::mem::take(s);
                if slot == 0 {
                    return None;
                }
                *len -= 1;
                slot
            }
            IdSlots::Sparse(m) => m.remove(&id)?,
        };
        self.keep_dense_enough();
        Some(slot)
    }

    /// Room for ids up to `highest` (a full load's new ids), and, if the
    /// table went sparse and the ids now fit a range again, dense again.
    pub(super) fn reserve(&mut self, more: usize, highest: u32) {
        match self {
            IdSlots::Dense { base, slots, .. } => {
                let want = highest.saturating_sub(*base) as usize + 1;
                if want > slots.capacity() {
                    // With an eighth more, the deltas that follow a load
                    // append without moving a table of megabytes.
                    let room = want + want / 8 + SLACK;
                    slots.reserve_exact(room - slots.len());
                }
            }
            IdSlots::Sparse(m) => {
                let lo = m.keys().min().copied().unwrap_or(highest);
                let hi = m.keys().max().copied().unwrap_or(highest).max(highest);
                let span = (hi - lo) as usize + 1;
                if span <= 2 * (m.len() + more) + SLACK {
                    let mut slots = vec![0; (hi - lo) as usize + 1];
                    for (id, s) in m.iter() {
                        slots[(id - lo) as usize] = *s;
                    }
                    *self = IdSlots::Dense {
                        base: lo,
                        slots,
                        len: m.len(),
                    };
                } else {
                    m.reserve(more);
                }
            }
        }
    }

    /// A dense table whose range is more than twice as wide as its ids
    /// (plus slack) loses the empty ends, and if still that wide, turns
    /// into a hash map.
    fn keep_dense_enough(&mut self) {
        let IdSlots::Dense { base, slots, len } = self else {
            return;
        };
        if slots.len() <= 2 * *len + SLACK {
            return;
        }
        let first = slots.iter().position(|s| *s != 0).unwrap_or(slots.len());
        let last = slots.iter().rposition(|s| *s != 0).map_or(first, |i| i + 1);
        slots.truncate(last);
        slots.drain(..first);
        *base += first as u32;
        if slots.len() <= 2 * *len + SLACK {
            slots.shrink_to(2 * *len + SLACK);
            return;
        }
        let sparse: FastMap<u32, u32> = self.iter().collect();
        *self = IdSlots::Sparse(sparse);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn same(t: &IdSlots, want: &BTreeMap<u32, u32>) {
        let mut got: Vec<(u32, u32)> = t.iter().collect();
        got.sort();
        assert_eq!(got, want.iter().map(|(a, b)| (*a, *b)).collect::<Vec<_>>());
        assert_eq!(t.len(), want.len());
        for (id, s) in want {
            assert_eq!(t.get(*id), Some(*s));
        }
    }

    #[test]
    fn churn_turns_the_table_sparse_and_a_load_turns_it_dense_again() {
        let mut t = IdSlots::default();
        let mut want = BTreeMap::new();
        // A list of 10,000 entries, then a churn that keeps 100 of the
        // oldest and lists new ones with ever higher ids.
        for id in 1..=10_000 {
            t.insert(id, id + 7);
            want.insert(id, id + 7);
        }
        assert!(matches!(t, IdSlots::Dense { .. }));
        for id in 101..=10_000 {
            assert_eq!(t.remove(id), Some(id + 7));
            want.remove(&id);
            let new = id + 100_000;
            t.insert(new, id);
            want.insert(new, id);
        }
        assert!(
            matches!(t, IdSlots::Sparse(_)),
            "ids 1-100 and 100,101-110,000"
        );
        same(&t, &want);
        assert_eq!(t.get(5_000), None);
        assert_eq!(t.remove(5_000), None);
        // The old hundred withdrawn: the rest fits one range again.
        for id in 1..=100 {
            t.remove(id);
            want.remove(&id);
        }
        t.reserve(10, 110_010);
        assert!(matches!(t, IdSlots::Dense { .. }));
        same(&t, &want);
    }

    #[test]
    fn ids_below_the_range_and_removals_at_its_ends_keep_it_exact() {
        let mut t = IdSlots::default();
        let mut want = BTreeMap::new();
        for id in [50, 40, 60, 45, 70] {
            t.insert(id, id * 2);
            want.insert(id, id * 2);
        }
        same(&t, &want);
        let read_back = IdSlots::of(t.iter().collect());
        assert!(matches!(read_back, IdSlots::Dense { base: 40, .. }));
        same(&read_back, &want);
        for id in [40, 70] {
            t.remove(id);
            want.remove(&id);
        }
        same(&t, &want);
        assert_eq!(t.get(39), None);
        assert_eq!(t.get(1_000_000), None);
    }
}
