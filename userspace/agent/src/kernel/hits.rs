//! Per-entry hit counters: an array with one counter per counter slot and
//! CPU, indexed by a slot that this module gives each entry id and writes
//! into the entry's rules as they go into the kernel. Counting a hit is an
//! array access on the hit path, not a hash probe.
//!
//! Layout (`u64` elements): element 0 holds S, the slots per CPU; the
//! counter of slot `s` on CPU `c` is element `1 + c * S + s`. Each CPU's
//! counters are contiguous, so CPUs counting one entry do not share a cache
//! line, and only the CPU that owns a counter increments it. The kernel
//! cannot resize a per-CPU array behind an array of maps (it allows
//! differing sizes only for plain arrays), hence a plain array laid out
//! per CPU. It is mmapped, so reading a million counters is a memory scan.
//!
//! Entry ids are never reused; slots are, so the array stays as long as
//! the list, not as the history of ids. A slot freed with its entry is
//! zeroed and kept out of use for [`QUARANTINE`], longer than any packet
//! or sampled event still naming it can be in flight. The slot table is
//! not stored anywhere: it is read back from the rules in the kernel.
//!
//! The array grows by doubling: a new one, the counts copied, swapped into
//! the outer map; what the old array gained in the instant of the swap is
//! added once no packet can be counting into it any more.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Array, IterableMap, MapData};
use aya::util::nr_cpus;
use c2wall_common::*;

use super::sets::{create_hit_array, Outer};
use crate::dataplane::GRACE;
use crate::error::AgentError;

pub type HitArray = Array<MapData, u64>;

/// How long a freed slot stays unused.
pub const QUARANTINE: Duration = Duration::from_secs(2);
/// Fewest slots per CPU an array is created with.
pub const MIN_SLOTS: u32 = 1024;

fn io_err(source: std::io::Error) -> AgentError {
    AgentError::MapWrite {
        map: MAP_HITS,
        source,
    }
}

/// Elements of an array of `slots` slots per CPU.
pub fn elements(slots: u32) -> Result<u32, AgentError> {
    let cpus = nr_cpus().map_err(|(_, e)| io_err(e))? as u64;
    u32::try_from(1 + cpus * slots as u64)
        .map_err(|_| io_err(std::io::Error::from_raw_os_error(libc::E2BIG)))
}

/// A hit array mapped into our memory.
pub struct Counters {
    map: HitArray,
    base: *mut u64,
    len: usize,
    slots: u64,
    cpus: u64,
}

// SAFETY: the mapping is owned by this value and only reached through it.
unsafe impl Send for Counters {}

impl Counters {
    /// Maps `map` (created with BPF_F_MMAPABLE); when `slots` is Some, the
    /// array is new and its slots-per-CPU element is written.
    pub fn map(map: HitArray, slots: Option<u32>) -> Result<Counters, AgentError> {
        let elements = map.len() as usize;
        let page = 4096;
        let len = (elements * 8).div_ceil(page) * page;
        let fd = map.map().fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the map's value area, unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io_err(std::io::Error::last_os_error()));
        }
        let base = ptr as *mut u64;
        if let Some(s) = slots {
            // SAFETY: element 0 is inside the mapping.
            unsafe { base.write_volatile(s as u64) };
        }
        // SAFETY: as above.
        let slots = unsafe { base.read_volatile() };
        let cpus = if slots == 0 {
            0
        } else {
            (elements as u64 - 1) / slots
        };
        Ok(Counters {
            map,
            base,
            len,
            slots,
            cpus,
        })
    }

    pub fn slots(&self) -> u32 {
        self.slots as u32
    }

    pub fn array(&self) -> &HitArray {
        &self.map
    }

    fn cell(&self, cpu: u64, slot: u32) -> Option<&AtomicU64> {
        if (slot as u64) >= self.slots || cpu >= self.cpus {
            return None;
        }
        let i = 1 + cpu * self.slots + slot as u64;
        // SAFETY: i < elements, inside the mapping; u64 cells are aligned.
        Some(unsafe { AtomicU64::from_ptr(self.base.add(i as usize)) })
    }

    /// Per-CPU counts of `slot`.
    fn read(&self, slot: u32) -> Vec<u64> {
        (0..self.cpus)
            .map(|c| self.cell(c, slot).map_or(0, |a| a.load(Ordering::Relaxed)))
            .collect()
    }

    fn add(&self, slot: u32, per_cpu: &[u64]) {
        for (c, n) in per_cpu.iter().enumerate() {
            if let Some(a) = self.cell(c as u64, slot) {
                a.fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    fn zero(&self, slot: u32) {
        for c in 0..self.cpus {
            if let Some(a) = self.cell(c, slot) {
                a.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in `map`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// An array swapped out, with the counts copied from it.
struct Retired {
    counters: Counters,
    copied: HashMap<u32, Vec<u64>>,
    at: Instant,
}

pub struct HitSlots {
    counters: Counters,
    slot_of: HashMap<u32, u32>,
    id_of: HashMap<u32, u32>,
    free: VecDeque<(u32, Instant)>,
    /// Slots below this have been given out at some time (slot 0 never is).
    next: u32,
    retired: Option<Retired>,
}

impl HitSlots {
    /// Takes over `counters` with the slots the kernel's rules already carry
    /// (`(entry id, slot)` pairs read from the rule maps).
    pub fn adopt(counters: Counters, in_use: impl IntoIterator<Item = (u32, u32)>) -> HitSlots {
        let mut s = HitSlots {
            counters,
            slot_of: HashMap::new(),
            id_of: HashMap::new(),
            free: VecDeque::new(),
            next: 1,
            retired: None,
        };
        for (id, slot) in in_use {
            if slot != 0 {
                s.slot_of.insert(id, slot);
                s.id_of.insert(slot, id);
                s.next = s.next.max(slot + 1);
            }
        }
        let now = Instant::now();
        for slot in 1..s.next {
            if !s.id_of.contains_key(&slot) {
                s.free.push_back((slot, now));
            }
        }
        s
    }

    /// The slot of entry `id`, given one if it has none.
    pub fn assign(&mut self, outer: &mut Outer, id: u32) -> Result<u32, AgentError> {
        if let Some(s) = self.slot_of.get(&id) {
            return Ok(*s);
        }
        let slot = match self.free.front() {
            Some((s, at)) if at.elapsed() >= QUARANTINE => {
                let s = *s;
                self.free.pop_front();
                s
            }
            _ => {
                self.next += 1;
                self.next - 1
            }
        };
        if slot >= self.counters.slots() {
            let cap = (self.counters.slots() * 2).max(slot + 1).max(MIN_SLOTS);
            self.grow(outer, cap)?;
        }
        self.slot_of.insert(id, slot);
        self.id_of.insert(slot, id);
        Ok(slot)
    }

    /// Entry `id` is gone: its count is dropped and its slot freed.
    pub fn forget(&mut self, id: u32) -> Result<(), AgentError> {
        self.fold_retired(false);
        let Some(slot) = self.slot_of.remove(&id) else {
            return Ok(());
        };
        self.id_of.remove(&slot);
        self.counters.zero(slot);
        self.free.push_back((slot, Instant::now()));
        Ok(())
    }

    /// Counts by entry id, summed over CPUs; entries never hit are left out.
    pub fn hits(&mut self) -> HashMap<u32, u64> {
        self.fold_retired(false);
        self.id_of
            .iter()
            .filter_map(|(slot, id)| {
                let n: u64 = self.counters.read(*slot).iter().sum();
                (n > 0).then_some((*id, n))
            })
            .collect()
    }

    fn grow(&mut self, outer: &mut Outer, slots: u32) -> Result<(), AgentError> {
        self.fold_retired(true);
        let old = &self.counters;
        let ids = &self.id_of;
        let (new, copied) = create_hit_array(outer, slots, |new| {
            // Copied before the swap, so a reader never sees a count drop.
            let mut copied = HashMap::new();
            for slot in ids.keys() {
                let v = old.read(*slot);
                if v.iter().any(|n| *n != 0) {
                    new.add(*slot, &v);
                    copied.insert(*slot, v);
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
    /// `wait`).
    fn fold_retired(&mut self, wait: bool) {
        let Some(r) = &self.retired else {
            return;
        };
        let age = r.at.elapsed();
        if age < GRACE {
            if !wait {
                return;
            }
            std::thread::sleep(GRACE - age);
        }
        let r = self.retired.take().expect("checked above");
        for slot in self.id_of.keys() {
            let before = r.copied.get(slot);
            let gained: Vec<u64> = r
                .counters
                .read(*slot)
                .iter()
                .enumerate()
                .map(|(cpu, n)| n - before.and_then(|b| b.get(cpu)).copied().unwrap_or(0))
                .collect();
            if gained.iter().any(|n| *n != 0) {
                self.counters.add(*slot, &gained);
            }
        }
    }
}
