//! A rule set's node slots: where each lives (its slot table, or the stash
//! when an in-place change found no room there), written as meta words.

use aya::maps::{Array, MapData};
use c2wall_common::*;
use c2wall_model::Family;

use super::sets::{mapping, new_table, SetMaps};
use super::table::{self, Layout, Mapping, V4, V6};
use crate::compile::NodeSlot;
use crate::error::AgentError;

/// A slot's key in its family's table: the address as the program reads it
/// (native order of the big-endian value) and the level index.
pub enum TableKey {
    V4(u32, u32),
    V6([u64; 2], u32),
}

impl TableKey {
    pub fn of(s: &NodeSlot) -> TableKey {
        let a = s.addr;
        match s.family {
            Family::V4 => TableKey::V4(
                u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
                s.level as u32 / V4_STRIDE,
            ),
            Family::V6 => {
                let hi = u64::from_be_bytes(a[..8].try_into().expect("8 bytes"));
                let lo = u64::from_be_bytes(a[8..].try_into().expect("8 bytes"));
                TableKey::V6([hi, lo], s.level as u32 / V6_STRIDE)
            }
        }
    }

    /// The level index (level / stride).
    pub fn idx(&self) -> u32 {
        match self {
            TableKey::V4(_, idx) | TableKey::V6(_, idx) => *idx,
        }
    }
}

/// The slot a table entry or stash key stands for.
fn slot_v4(addr: u32, idx: u32) -> NodeSlot {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&addr.to_be_bytes());
    NodeSlot {
        family: Family::V4,
        level: (idx * V4_STRIDE) as u8,
        addr: a,
    }
}

fn slot_v6([hi, lo]: [u64; 2], idx: u32) -> NodeSlot {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&hi.to_be_bytes());
    a[8..].copy_from_slice(&lo.to_be_bytes());
    NodeSlot {
        family: Family::V6,
        level: (idx * V6_STRIDE) as u8,
        addr: a,
    }
}

fn stash_v4(s: &NodeSlot) -> V4Key {
    V4Key {
        addr: [s.addr[0], s.addr[1], s.addr[2], s.addr[3]],
        level: s.level,
        _pad: [0; 3],
    }
}

fn stash_v6(s: &NodeSlot) -> V6Key {
    V6Key {
        addr: s.addr,
        level: s.level,
        _pad: [0; 3],
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> AgentError {
    move |e| super::put_err(map)(e)
}

/// A stash insert's error: a full stash is [`AgentError::SetFull`] (the
/// applier reloads), anything else a write error.
fn full_or(
    r: Result<(), aya::maps::MapError>,
    map: &'static str,
    what: &'static str,
) -> Result<(), AgentError> {
    match r {
        Ok(()) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
        {
            Err(AgentError::SetFull(what))
        }
        Err(e) => Err(super::put_err(map)(e)),
    }
}

/// Grows a table by this fraction when a reload's slots found no place.
const GROWTH: u32 = 8;
/// Sizes tried before a reload gives up.
const TRIES: usize = 6;

/// Places `items` in one family's empty table, replacing it (and its
/// mapping) with a larger one while they find no place; true if replaced.
fn place_in<L: Layout>(
    table: &mut Array<MapData, L::Bucket>,
    mem: &mut Mapping<L::Bucket>,
    map: &'static str,
    seed: u64,
    items: &[(L::Addr, u32, u64)],
) -> Result<bool, AgentError> {
    let mut replaced = false;
    for attempt in 0..=TRIES {
        if table::build::<L>(mem.buckets(), seed, items.iter().copied()) {
            return Ok(replaced);
        }
        if attempt == TRIES {
            break;
        }
        let n = table.len();
        *table = new_table(map, n + n / GROWTH + 1)?;
        *mem = mapping(map, table)?;
        replaced = true;
    }
    Err(AgentError::Placement {
        what: L::WHAT,
        slots: items.len(),
    })
}

impl SetMaps {
    /// Makes slot `s` hold `meta`, in place. True when the stash's levels
    /// changed (the config must say so).
    pub fn put_node(&mut self, s: &NodeSlot, meta: u64) -> Result<bool, AgentError> {
        let seed = self.seed;
        match TableKey::of(s) {
            TableKey::V4(a, idx) => {
                let key = stash_v4(s);
                // The stash is asked only at a level it holds slots of.
                let stashed =
                    self.stashed[0][idx as usize] > 0 && self.stash_v4.get(&key, 0).is_ok();
                if !stashed && table::put::<V4>(self.map_v4.buckets(), seed, a, idx, meta) {
                    return Ok(false);
                }
                let r = self.stash_v4.insert(key, meta, 0);
                full_or(r, MAP_STASH_V4, V4::WHAT)?;
                Ok(!stashed && self.stashed_one(0, idx))
            }
            TableKey::V6(a, idx) => {
                let key = stash_v6(s);
                let stashed =
                    self.stashed[1][idx as usize] > 0 && self.stash_v6.get(&key, 0).is_ok();
                if !stashed && table::put::<V6>(self.map_v6.buckets(), seed, a, idx, meta) {
                    return Ok(false);
                }
                let r = self.stash_v6.insert(key, meta, 0);
                full_or(r, MAP_STASH_V6, V6::WHAT)?;
                Ok(!stashed && self.stashed_one(1, idx))
            }
        }
    }

    /// The live meta word of slot `s`, from its table or, at a level the
    /// stash holds slots of, the stash (one syscall).
    pub fn get_node(&self, s: &NodeSlot) -> Result<Option<u64>, AgentError> {
        let (found, family, idx) = match TableKey::of(s) {
            TableKey::V4(a, idx) => (
                table::get::<V4>(self.map_v4.view(), self.seed, a, idx),
                0,
                idx,
            ),
            TableKey::V6(a, idx) => (
                table::get::<V6>(self.map_v6.view(), self.seed, a, idx),
                1,
                idx,
            ),
        };
        if found.is_some() || self.stashed[family][idx as usize] == 0 {
            return Ok(found);
        }
        let r = if family == 0 {
            self.stash_v4.get(&stash_v4(s), 0)
        } else {
            self.stash_v6.get(&stash_v6(s), 0)
        };
        match r {
            Ok(m) => Ok(Some(m)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err([MAP_STASH_V4, MAP_STASH_V6][family])(e)),
        }
    }

    /// Counts a slot that went into the stash; true when its level is new
    /// to the stash.
    fn stashed_one(&mut self, family: usize, idx: u32) -> bool {
        let n = &mut self.stashed[family][idx as usize];
        *n += 1;
        *n == 1
    }

    /// Removes slot `s`, wherever it is. True when the stash's levels
    /// changed.
    pub fn del_node(&mut self, s: &NodeSlot) -> Result<bool, AgentError> {
        let seed = self.seed;
        let (family, idx) = match TableKey::of(s) {
            TableKey::V4(a, idx) => {
                if table::remove::<V4>(self.map_v4.buckets(), seed, a, idx) {
                    return Ok(false);
                }
                (0, idx)
            }
            TableKey::V6(a, idx) => {
                if table::remove::<V6>(self.map_v6.buckets(), seed, a, idx) {
                    return Ok(false);
                }
                (1, idx)
            }
        };
        // Not in the table, and its level has nothing stashed: already gone
        // (deletes are idempotent), no syscall.
        if self.stashed[family][idx as usize] == 0 {
            return Ok(false);
        }
        let r = if family == 0 {
            self.stash_v4.remove(&stash_v4(s))
        } else {
            self.stash_v6.remove(&stash_v6(s))
        };
        match r {
            Ok(()) => {
                let n = &mut self.stashed[family][idx as usize];
                *n -= 1;
                Ok(*n == 0)
            }
            Err(e) => super::del_ok([MAP_STASH_V4, MAP_STASH_V6][family], Err(e)).map(|()| false),
        }
    }

    /// Every live slot with its meta word, tables and stashes.
    pub fn live_nodes(&self) -> Result<Vec<(NodeSlot, u64)>, AgentError> {
        let mut out = Vec::new();
        for (a, idx, m) in table::live::<V4>(self.map_v4.view()) {
            out.push((slot_v4(a, idx), m));
        }
        for (a, idx, m) in table::live::<V6>(self.map_v6.view()) {
            out.push((slot_v6(a, idx), m));
        }
        for kv in self.stash_v4.iter() {
            let (k, m) = kv.map_err(map_err(MAP_STASH_V4))?;
            out.push((
                slot_v4(u32::from_be_bytes(k.addr), k.level as u32 / V4_STRIDE),
                m,
            ));
        }
        for kv in self.stash_v6.iter() {
            let (k, m) = kv.map_err(map_err(MAP_STASH_V6))?;
            let slot = NodeSlot {
                family: Family::V6,
                level: k.level,
                addr: k.addr,
            };
            out.push((slot, m));
        }
        Ok(out)
    }

    /// Places a reload's slots in this set's empty tables (packets do not
    /// read the set yet). A table whose slots find no place is replaced by
    /// a larger one (`replaced` tells the caller to install it).
    pub fn place(
        &mut self,
        v4: &[(u32, u32, u64)],
        v6: &[([u64; 2], u32, u64)],
    ) -> Result<bool, AgentError> {
        let seed = self.seed;
        let grew4 = place_in::<V4>(&mut self.nodes_v4, &mut self.map_v4, MAP_NODES_V4, seed, v4)?;
        let grew6 = place_in::<V6>(&mut self.nodes_v6, &mut self.map_v6, MAP_NODES_V6, seed, v6)?;
        self.size.nodes_v4 = self.nodes_v4.len() * BUCKET_ENTRIES as u32;
        self.size.nodes_v6 = self.nodes_v6.len() * BUCKET_ENTRIES as u32;
        Ok(grew4 || grew6)
    }

    /// Writes this set's table geometry and stash levels into `cfg`'s
    /// entries for set `set` (the program reads them from the config).
    pub fn describe(&self, cfg: &mut Config, set: usize) {
        cfg.v4_buckets[set] = self.nodes_v4.len();
        cfg.v6_buckets[set] = self.nodes_v6.len();
        cfg.table_seed[set] = self.seed;
        let levels = |counts: &[u32]| {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .fold(0u32, |acc, (i, _)| acc | (1 << i))
        };
        cfg.stash_v4_levels[set] = levels(&self.stashed[0][..V4_LEVELS as usize]);
        cfg.stash_v6_levels[set] = levels(&self.stashed[1]);
    }
}
