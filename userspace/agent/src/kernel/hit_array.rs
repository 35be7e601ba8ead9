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
//!
//! The outer map has two slots: packets count in the one
//! `Config::hit_index` names, sized by `Config::hit_slots` (read with the
//! config, so a hit costs one lookup in the array). A new array goes into
//! the other slot, its size into the config, then the index flips; the old
//! array is released once no packet can still be counting in it.

use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::{Array, IterableMap, MapData};
use aya::util::nr_cpus;
use c2wall_common::*;

use super::config_map::ConfigMap;
use super::create::BPF_MAP_TYPE_ARRAY;
use super::inner::{clear_slot, inner_pin, install_inner, new_inner, read_inner};
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

/// What a swap of the hit array writes: the outer map's slots and the
/// config fields that name the array packets count in.
pub struct HitMaps<'a> {
    pub outer: &'a mut Outer,
    pub config: &'a ConfigMap,
}

/// A hit array mapped into our memory.
pub struct Counters {
    map: HitArray,
    mem: Mapping<u64>,
    slots: u64,
    cpus: u64,
    /// Its slot in the outer map.
    index: u32,
}

impl Counters {
    /// Maps `map` (created with BPF_F_MMAPABLE), in outer slot `index`;
    /// when `slots` is Some, the array is new and its slots-per-CPU
    /// element is written.
    fn map(map: HitArray, index: u32, slots: Option<u32>) -> Result<Counters, AgentError> {
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
            index,
        })
    }

    pub fn slots(&self) -> u32 {
        self.slots as u32
    }

    /// Its slot in the outer map.
    pub fn index(&self) -> u32 {
        self.index
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

/// The hit-counter array packets count in, if it can be trusted, mapped.
pub fn read_hit_array(maps: &mut HitMaps) -> Result<Option<Counters>, AgentError> {
    let index = maps.config.read()?.hit_index & 1;
    let pins = maps.outer.pins.clone();
    match read_inner::<HitArray>(&mut maps.outer.hits, MAP_HITS, pins.as_deref(), index) {
        Some(a) => Counters::map(a, index, None).map(Some),
        None => Ok(None),
    }
}

/// A new hit-counter array of `slots` slots per CPU, filled by `fill`, put
/// in the outer slot packets do not count in, then made the one they do.
pub fn create_hit_array<T>(
    maps: &mut HitMaps,
    slots: u32,
    fill: impl FnOnce(&Counters) -> Result<T, AgentError>,
) -> Result<(Counters, T), AgentError> {
    let index = 1 - (maps.config.read()?.hit_index & 1);
    let a: HitArray = new_inner(
        MAP_HITS,
        BPF_MAP_TYPE_ARRAY,
        "c2w_hits",
        elements(slots)?,
        BPF_F_INNER_MAP | BPF_F_MMAPABLE,
    )?;
    let counters = Counters::map(a, index, Some(slots))?;
    let t = fill(&counters)?;
    let pins = maps.outer.pins.clone();
    install_inner(
        &mut maps.outer.hits,
        MAP_HITS,
        pins.as_deref(),
        index,
        counters.array(),
    )?;
    // Its size first, while packets still read the other slot's; then the
    // flip (one field per write: see ConfigMap).
    maps.config
        .update(|c| c.hit_slots[index as usize] = slots)?;
    maps.config.update(|c| c.hit_index = index)?;
    // Nothing opens the old array by its pin any more (a restart reads the
    // slot the config names); the array itself stays in its slot until
    // release_hit_slot, as packets may still be counting in it.
    remove_pin(maps, 1 - index)?;
    Ok((counters, t))
}

/// Empties outer slot `index` (an array packets no longer count in) and
/// removes its pin, so its memory goes back to the kernel.
pub fn release_hit_slot(maps: &mut HitMaps, index: u32) -> Result<(), AgentError> {
    clear_slot(&maps.outer.hits, index).map_err(io_err)?;
    remove_pin(maps, index)?;
    maps.config.update(|c| c.hit_slots[index as usize] = 0)
}

fn remove_pin(maps: &HitMaps, index: u32) -> Result<(), AgentError> {
    let Some(dir) = &maps.outer.pins else {
        return Ok(());
    };
    let pin = inner_pin(dir, MAP_HITS, index);
    match std::fs::remove_file(&pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AgentError::WriteFile { path: pin, source }),
    }
}
