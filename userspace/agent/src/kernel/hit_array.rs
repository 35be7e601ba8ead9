//! The hit-counter array, mapped into the agent's memory.
//!
//! Layout (`u64` elements, c2wall_common::table): element 0 holds S, the
//! slots per CPU; then the entry id of each slot (two per element: a drop
//! event names its entry from here, and a restarted agent reads its slot
//! table back from here); then S counters per CPU. Each CPU's
//! counters are contiguous, so CPUs counting one entry do not share a cache
//! line, and only the CPU that owns a counter increments it. The kernel
//! cannot resize a per-CPU array behind an array of maps (it allows
//! differing sizes only for plain arrays), hence a plain array laid out
//! per CPU. It is mmapped, so reading a million counters is a memory scan.

use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::{Array, IterableMap, MapData};
use aya::util::nr_cpus;
use c2wall_common::*;

use super::create::BPF_MAP_TYPE_ARRAY;
use super::inner::{install_inner, new_inner, read_inner};
use super::sets::{Outer, BPF_F_INNER_MAP, BPF_F_MMAPABLE};
use super::table::Mapping;
use crate::error::AgentError;

pub type HitArray = Array<MapData, u64>;

fn io_err(source: std::io::Error) -> AgentError {
    AgentError::MapWrite {
        map: MAP_HITS,
        source,
    }
}

/// Elements of an array of `slots` slots per CPU.
pub fn elements(slots: u32) -> Result<u32, AgentError> {
    let cpus = nr_cpus().map_err(|(_, e)| io_err(e))? as u64;
    u32::try_from(hit_elements(slots as u64, cpus))
        .map_err(|_| io_err(std::io::Error::from_raw_os_error(libc::E2BIG)))
}

/// A hit array mapped into our memory.
pub struct Counters {
    map: HitArray,
    mem: Mapping<u64>,
    slots: u64,
    cpus: u64,
}

impl Counters {
    /// Maps `map` (created with BPF_F_MMAPABLE); when `slots` is Some, the
    /// array is new and its slots-per-CPU element is written.
    pub fn map(map: HitArray, slots: Option<u32>) -> Result<Counters, AgentError> {
        let elements = map.len() as usize;
        let mem = Mapping::<u64>::new(map.map(), map.len()).map_err(io_err)?;
        let base = mem.as_ptr();
        if let Some(s) = slots {
            // SAFETY: element 0 is inside the mapping.
            unsafe { base.write_volatile(s as u64) };
        }
        // SAFETY: as above.
        let slots = unsafe { base.read_volatile() };
        let cpus = (elements as u64)
            .saturating_sub(hit_elements(slots, 0))
            .checked_div(slots)
            .unwrap_or(0);
        Ok(Counters {
            map,
            mem,
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
        let i = hit_counter_index(self.slots, cpu, slot);
        // SAFETY: i < elements, inside the mapping; u64 cells are aligned.
        Some(unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(i as usize)) })
    }

    fn id_cell(&self, slot: u32) -> Option<(&AtomicU64, u32)> {
        if (slot as u64) >= self.slots {
            return None;
        }
        let (i, shift) = hit_id_index(slot);
        // SAFETY: as in cell.
        Some((
            unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(i as usize)) },
            shift,
        ))
    }

    /// The entry id slot `slot` counts for (0: none).
    pub fn id(&self, slot: u32) -> u32 {
        self.id_cell(slot)
            .map_or(0, |(a, shift)| (a.load(Ordering::Relaxed) >> shift) as u32)
    }

    /// Records that slot `slot` counts for entry `id` (0: for none).
    pub fn set_id(&self, slot: u32, id: u32) {
        if let Some((a, shift)) = self.id_cell(slot) {
            // Only the agent writes ids (the program reads them): a read and
            // a write keep the other half.
            let keep = a.load(Ordering::Relaxed) & !(0xffff_ffffu64 << shift);
            a.store(keep | ((id as u64) << shift), Ordering::Relaxed);
        }
    }

    /// Per-CPU counts of `slot`.
    pub fn cpus(&self) -> u64 {
        self.cpus
    }

    /// The count of `slot` on `cpu`.
    pub fn get(&self, cpu: u64, slot: u32) -> u64 {
        self.cell(cpu, slot)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    pub fn add_one(&self, cpu: u64, slot: u32, n: u64) {
        if let Some(a) = self.cell(cpu, slot) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn read(&self, slot: u32) -> Vec<u64> {
        (0..self.cpus)
            .map(|c| self.cell(c, slot).map_or(0, |a| a.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn add(&self, slot: u32, per_cpu: &[u64]) {
        for (c, n) in per_cpu.iter().enumerate() {
            if let Some(a) = self.cell(c as u64, slot) {
                a.fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    pub fn zero(&self, slot: u32) {
        for c in 0..self.cpus {
            if let Some(a) = self.cell(c, slot) {
                a.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The hit-counter array in the outer slot, if it can be trusted, mapped.
pub fn read_hit_array(outer: &mut Outer) -> Result<Option<Counters>, AgentError> {
    let pins = outer.pins.clone();
    match read_inner::<HitArray>(&mut outer.hits, MAP_HITS, pins.as_deref(), 0) {
        Some(a) => Counters::map(a, None).map(Some),
        None => Ok(None),
    }
}

/// A new hit-counter array of `slots` slots per CPU, filled by `fill`
/// before it is swapped into the outer map.
pub fn create_hit_array<T>(
    outer: &mut Outer,
    slots: u32,
    fill: impl FnOnce(&Counters) -> Result<T, AgentError>,
) -> Result<(Counters, T), AgentError> {
    let a: HitArray = new_inner(
        MAP_HITS,
        BPF_MAP_TYPE_ARRAY,
        "c2w_hits",
        elements(slots)?,
        BPF_F_INNER_MAP | BPF_F_MMAPABLE,
    )?;
    let counters = Counters::map(a, Some(slots))?;
    let t = fill(&counters)?;
    let pins = outer.pins.clone();
    install_inner(
        &mut outer.hits,
        MAP_HITS,
        pins.as_deref(),
        0,
        counters.array(),
    )?;
    Ok((counters, t))
}
