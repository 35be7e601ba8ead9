//! Per-entry hit counters: an array with one counter per counter slot and
//! CPU, indexed by a slot that this module gives each entry id and writes
//! into the entry's rules as they go into the kernel. Counting a hit is an
//! array access on the hit path, not a hash probe (layout: hit_array.rs).
//!
//! Entry ids are never reused; slots are, so the array stays as long as
//! the list, not as the history of ids. A slot freed with its entry is
//! zeroed and kept out of use for [`QUARANTINE`], longer than any packet
//! or sampled event still naming it can be in flight. The slot table is
//! the array's own id block (hit_array.rs): written as slots are given out,
//! read back by a restarted agent.
//!
//! The array grows by doubling: a new one, the counts copied, swapped into
//! the outer map; what the old array gained in the instant of the swap is
//! added once no packet can be counting into it any more, and then the old
//! array is released (hit_array.rs). Freed slots are
//! reused lowest first, and when the list shrinks to a quarter of the array
//! (and the slots in use allow it) the array is swapped for a smaller one
//! the same way.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use c2wall_common::SIDE_COUNTER_LIMIT;

use super::hit_array::{create_hit_array, release_hit_slot, Counters, HitMaps};
use super::id_slots::IdSlots;
use crate::dataplane::GRACE;
use crate::error::AgentError;
use crate::fastmap::FastSet;

/// How long a freed slot stays unused.
pub const QUARANTINE: Duration = Duration::from_secs(2);
/// Fewest slots per CPU an array is created with.
pub const MIN_SLOTS: u32 = 1024;

/// An array swapped out, with the counts copied from it.
struct Retired {
    counters: Counters,
    copied: HashMap<u32, Vec<u64>>,
    at: Instant,
}

pub struct HitSlots {
    counters: Counters,
    /// Entry id -> slot. The other way is the array's own id block
    /// ([`Counters::id`]), not a second table.
    slot_of: IdSlots,
    /// Freed slots in quarantine, oldest first.
    free: VecDeque<(u32, Instant)>,
    /// Freed slots out of quarantine, reused lowest first.
    ready: BTreeSet<u32>,
    /// Slots below this have been given out at some time (slot 0 never is).
    next: u32,
    /// Most slots (`capacity.hits`, at most what a slot table's meta word
    /// can name); a list with more entries is refused.
    limit: u32,
    retired: Option<Retired>,
}

impl HitSlots {
    /// Takes over `counters` with the slots its id block names.
    pub fn adopt(counters: Counters, limit: u32) -> HitSlots {
        let in_use: Vec<(u32, u32)> = (1..counters.slots())
            .map(|slot| (counters.id(slot), slot))
            .filter(|(id, _)| *id != 0)
            .collect();
        let limit = limit.min(SIDE_COUNTER_LIMIT - 1);
        let next = in_use.iter().map(|(_, slot)| slot + 1).max().unwrap_or(1);
        let mut s = HitSlots {
            counters,
            slot_of: IdSlots::of(in_use),
            free: VecDeque::new(),
            ready: BTreeSet::new(),
            next,
            limit,
            retired: None,
        };
        let now = Instant::now();
        for slot in 1..s.next {
            if s.counters.id(slot) == 0 {
                s.free.push_back((slot, now));
            }
        }
        s
    }

    /// Grows the array once to hold a slot for every one of `ids` that has
    /// none, so a full load does not grow it step by step (each step copies
    /// the counts and waits out a grace period).
    pub fn reserve(
        &mut self,
        maps: &mut HitMaps,
        ids: impl Iterator<Item = u32>,
    ) -> Result<(), AgentError> {
        let mut new = FastSet::default();
        for id in ids {
            if self.slot_of.get(id).is_none() {
                new.insert(id);
            }
        }
        let highest = new.iter().max().copied().unwrap_or(0);
        self.slot_of.reserve(new.len(), highest);
        // A power of two, as growing by doubling would reach: room for the
        // entries added after the load without growing again at once.
        let want = (self.next as usize + new.len()).next_power_of_two();
        let want = want.min(self.limit.max(MIN_SLOTS) as usize) as u32;
        if want > self.counters.slots() {
            self.resize(maps, want.max(MIN_SLOTS))?;
        }
        Ok(())
    }

    /// The slot of entry `id`, given one if it has none.
    pub fn assign(&mut self, maps: &mut HitMaps, id: u32) -> Result<u32, AgentError> {
        if let Some(s) = self.slot_of.get(id) {
            return Ok(s);
        }
        while let Some((s, at)) = self.free.front() {
            if at.elapsed() < QUARANTINE {
                break;
            }
            self.ready.insert(*s);
            self.free.pop_front();
        }
        let slot = match self.ready.pop_first() {
            Some(s) => s,
            None if self.next >= self.limit => {
                return Err(AgentError::Capacity {
                    what: "hit-counter",
                    needed: self.slot_of.len() + 1,
                    capacity: self.limit as usize,
                    setting: "capacity.hits",
                });
            }
            None => {
                self.next += 1;
                self.next - 1
            }
        };
        if slot >= self.counters.slots() {
            let cap = (self.counters.slots() * 2)
                .max(slot + 1)
                .max(MIN_SLOTS)
                .min(self.limit.max(MIN_SLOTS));
            self.resize(maps, cap)?;
        }
        self.slot_of.insert(id, slot);
        self.counters.set_id(slot, id);
        Ok(slot)
    }

    /// The entry counter slot `slot` counts for (0: none).
    pub fn entry(&self, slot: u32) -> u32 {
        self.counters.id(slot)
    }

    /// Entry `id` is gone: its count is dropped and its slot freed.
    pub fn forget(&mut self, maps: &mut HitMaps, id: u32) -> Result<(), AgentError> {
        self.fold_retired(maps, false)?;
        let Some(slot) = self.slot_of.remove(id) else {
            return Ok(());
        };
        self.counters.zero(slot);
        self.counters.set_id(slot, 0);
        self.free.push_back((slot, Instant::now()));
        Ok(())
    }

    /// Counts by entry id, summed over CPUs; entries never hit are left out.
    pub fn hits(&mut self, maps: &mut HitMaps) -> Result<HashMap<u32, u64>, AgentError> {
        self.fold_retired(maps, false)?;
        Ok(self
            .slot_of
            .iter()
            .filter_map(|(id, slot)| {
                let n: u64 = self.counters.read(slot).iter().sum();
                (n > 0).then_some((id, n))
            })
            .collect())
    }

    /// After an apply: folds in what a swapped-out array still holds (so
    /// later deltas do not pay for it), then shrinks the array if sparse.
    pub fn tidy(&mut self, maps: &mut HitMaps) -> Result<(), AgentError> {
        self.fold_retired(maps, true)?;
        self.shrink_if_sparse(maps)
    }

    /// A smaller array when the slots in use fill less than a quarter of
    /// this one and all fit the smaller one.
    fn shrink_if_sparse(&mut self, maps: &mut HitMaps) -> Result<(), AgentError> {
        let cap = self.counters.slots();
        let live = self.slot_of.len() as u32;
        if cap <= MIN_SLOTS || live.saturating_mul(4) >= cap {
            return Ok(());
        }
        let top = self.slot_of.iter().map(|(_, s)| s).max().unwrap_or(0);
        let want = (live.max(top + 1) * 2).next_power_of_two().max(MIN_SLOTS);
        if want >= cap || top >= want {
            return Ok(());
        }
        self.resize(maps, want)?;
        // Slots beyond the new end are gone; the next new one follows the
        // highest in use.
        self.next = top + 1;
        self.ready.retain(|s| *s < self.next);
        self.free.retain(|(s, _)| *s < self.next);
        Ok(())
    }

    fn resize(&mut self, maps: &mut HitMaps, slots: u32) -> Result<(), AgentError> {
        self.fold_retired(maps, true)?;
        let old = &self.counters;
        let ids = &self.slot_of;
        let (new, copied) = create_hit_array(maps, slots, |new| {
            // Copied before the swap, so a reader never sees a count drop.
            let mut copied = HashMap::new();
            for (id, slot) in ids.iter() {
                new.set_id(slot, id);
                let v = old.read(slot);
                if v.iter().any(|n| *n != 0) {
                    new.add(slot, &v);
                    copied.insert(slot, v);
                }
            }
            Ok(copied)
        })?;
        let old = std::mem::replace(&mut self.counters, new);
        self.retired = Some(Retired {
            counters: old,
            copied,
            at: Instant::now(),
        });
        Ok(())
    }

    /// Adds what the swapped-out array gained after its counts were copied,
    /// once no packet can still be counting into it (waiting for that when
    /// `wait`), then releases it.
    fn fold_retired(&mut self, maps: &mut HitMaps, wait: bool) -> Result<(), AgentError> {
        let Some(r) = &self.retired else {
            return Ok(());
        };
        let age = r.at.elapsed();
        if age < GRACE {
            if !wait {
                return Ok(());
            }
            std::thread::sleep(GRACE - age);
        }
        let r = self.retired.take().expect("checked above");
        // A scan of the old array's memory: cheap even at a million slots,
        // unlike a walk of the slot table.
        for cpu in 0..r.counters.cpus() {
            for slot in 1..r.counters.slots() {
                let now = r.counters.get(cpu, slot);
                if now == 0 || self.counters.id(slot) == 0 {
                    continue;
                }
                let before = r
                    .copied
                    .get(&slot)
                    .and_then(|b| b.get(cpu as usize))
                    .copied()
                    .unwrap_or(0);
                if now > before {
                    self.counters.add_one(cpu, slot, now - before);
                }
            }
        }
        release_hit_slot(maps, r.counters.index())
    }
}
