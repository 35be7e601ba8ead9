//! [`crate::dataplane::Dataplane`] over the real BPF maps.
//!
//! The program's maps come from the loaded object (or their pins); the
//! rule sets' inner maps and the hit counters behind the arrays of maps are
//! managed here (`sets`, `hits`).

mod allow;
mod batch;
mod config_map;
mod create;
mod dataplane;
mod dump;
mod hit_array;
mod hits;
mod id_slots;
mod inner;
pub mod memory;
mod nodes;
mod sets;
mod table;

use std::cell::RefCell;
use std::path::Path;

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use c2wall_common::*;

use crate::config::Capacity;
use crate::dataplane::SetSize;
use crate::error::AgentError;
use allow::Allow;
use config_map::ConfigMap;
use hit_array::HitMaps;
use hits::HitSlots;
use sets::{Outer, SetMaps};

/// Whether this handle may change what the program reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The agent: creates missing inner maps, writes.
    Own,
    /// `status`, the metrics reader, tests: never replaces a map.
    Read,
}

pub struct KernelMaps {
    config: ConfigMap,
    outer: RefCell<Outer>,
    /// Per rule set: its inner maps, None when they cannot be read (only
    /// for a reader, or for a set the program reads whose pins a crash left
    /// behind: the next reload replaces it).
    sets: [Option<SetMaps>; 2],
    allow: Allow,
    /// Two counters to an element (c2wall_common::COUNTER_PAIRS).
    counters: PerCpuArray<MapData, [u64; 2]>,
    /// Each CPU's sampling window and results.
    sampler: PerCpuArray<MapData, SamplerState>,
    ifslot: Array<MapData, u32>,
    /// Listed DNS names (key -> DNS_NAME_* bits).
    names: aya::maps::HashMap<MapData, u64, u32>,
    /// One bit per listed name key.
    name_filter: Array<MapData, u64>,
    /// Built on first use from the rules in the kernel (a full scan).
    hits: RefCell<Option<HitSlots>>,
    limits: Capacity,
    access: Access,
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    maps: &mut impl FnMut(&'static str) -> Option<Map>,
    name: &'static str,
) -> Result<T, AgentError> {
    let m = maps(name).ok_or(AgentError::MissingMap(name))?;
    T::try_from(m).map_err(|source| AgentError::Map { map: name, source })
}

fn raw(
    maps: &mut impl FnMut(&'static str) -> Option<Map>,
    name: &'static str,
) -> Result<Map, AgentError> {
    maps(name).ok_or(AgentError::MissingMap(name))
}

pub(crate) fn put_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
    move |e| match e {
        MapError::SyscallError(s) => AgentError::MapWrite {
            map,
            source: s.io_error,
        },
        source => AgentError::Map { map, source },
    }
}

/// Deleting what is already gone is success: deletes must be idempotent for
/// adoption and rollback.
pub(crate) fn del_ok(map: &'static str, r: Result<(), MapError>) -> Result<(), AgentError> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) | Err(MapError::ElementNotFound) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(put_err(map)(e)),
    }
}

/// A slot's meta word from its two rules (counter slots given) and flags.
fn node_meta(level_idx: u32, [to, from]: [Rule; 2], flags: u32) -> u64 {
    meta(
        level_idx,
        side(to.action, to.counter),
        side(from.action, from.counter),
        flags & NODE_HAS_PORTS != 0,
    )
}

impl KernelMaps {
    /// Takes the maps out of a loaded object (via `take`). Rule sets already
    /// in the outer maps (pinned by an earlier agent under `pins`) are read;
    /// empty or untrustworthy outer slots of a set the program does not read
    /// get empty minimal maps. `limits`: the configured upper capacities.
    pub fn new(
        take: impl FnMut(&'static str) -> Option<Map>,
        limits: Capacity,
        pins: Option<&Path>,
    ) -> Result<Self, AgentError> {
        Self::open(take, limits, pins, Access::Own)
    }

    /// Opens the maps pinned under `dir` to read them (`status`, metrics,
    /// tests): nothing is created or replaced.
    pub fn from_pins(dir: &Path) -> Result<Self, AgentError> {
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name))
                .ok()
                .and_then(|d| Map::from_map_data(d).ok())
        };
        let unlimited = Capacity {
            nodes_v4: u32::MAX,
            nodes_v6: u32::MAX,
            ports: u32::MAX,
            hits: u32::MAX,
        };
        Self::open(open, unlimited, Some(dir), Access::Read)
    }

    fn open(
        mut take: impl FnMut(&'static str) -> Option<Map>,
        limits: Capacity,
        pins: Option<&Path>,
        access: Access,
    ) -> Result<Self, AgentError> {
        let config = ConfigMap::new(typed(&mut take, MAP_CONFIG)?);
        let cfg = config.read()?;
        let mut outer = Outer {
            nodes_v4: raw(&mut take, MAP_NODES_V4)?,
            nodes_v6: raw(&mut take, MAP_NODES_V6)?,
            stash_v4: raw(&mut take, MAP_STASH_V4)?,
            stash_v6: raw(&mut take, MAP_STASH_V6)?,
            ports: raw(&mut take, MAP_PORTS)?,
            filters: MAP_FILTERS
                .iter()
                .map(|name| raw(&mut take, name))
                .collect::<Result<_, _>>()?,
            hits: raw(&mut take, MAP_HITS)?,
            pins: pins.map(Path::to_path_buf),
        };
        let active = cfg.active_set & 1;
        let mut sets = [None, None];
        for set in 0..RULE_SETS {
            let mut m = SetMaps::read(&mut outer, set, &cfg);
            // A set packets do not read can always be replaced; the active
            // one only when nothing is in it yet (fresh maps).
            let fresh = cfg.v4_levels[set as usize] == 0 && cfg.v6_levels[set as usize] == 0;
            if m.is_none() && access == Access::Own && (set != active || fresh) {
                let created = SetMaps::create(SetSize::EMPTY)?;
                created.install(&mut outer, set)?;
                m = Some(created);
            }
            sets[set as usize] = m;
        }
        Ok(KernelMaps {
            config,
            outer: RefCell::new(outer),
            sets,
            allow: Allow {
                v4: typed(&mut take, MAP_ALLOW_V4)?,
                v6: typed(&mut take, MAP_ALLOW_V6)?,
            },
            counters: typed(&mut take, MAP_COUNTERS)?,
            sampler: typed(&mut take, MAP_SAMPLER)?,
            ifslot: typed(&mut take, MAP_IFSLOT)?,
            names: typed(&mut take, MAP_DNS_NAMES)?,
            name_filter: typed(&mut take, MAP_DNS_FILTER)?,
            hits: RefCell::new(None),
            limits,
            access,
        })
    }

    fn set_mut(&mut self, set: u8) -> Result<&mut SetMaps, AgentError> {
        self.sets[set as usize & 1]
            .as_mut()
            .ok_or(AgentError::UnreadableRuleSet(set))
    }

    /// Runs `f` on the hit-counter table (built first if needed: a scan of
    /// the rules in the kernel) and the outer maps.
    fn with_hits<T>(
        &self,
        f: impl FnOnce(&mut HitSlots, &mut HitMaps) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut outer = self.outer.borrow_mut();
        let mut maps = HitMaps {
            outer: &mut outer,
            config: &self.config,
        };
        let mut hits = self.hits.borrow_mut();
        if hits.is_none() {
            let array = match (hit_array::read_hit_array(&mut maps)?, self.access) {
                (Some(a), Access::Own) => {
                    // A crash between a swap and the old array's release
                    // leaves it in the other slot: release it now.
                    hit_array::release_hit_slot(&mut maps, 1 - a.index())?;
                    a
                }
                (Some(a), Access::Read) => a,
                (None, Access::Own) => {
                    hit_array::create_hit_array(&mut maps, hits::MIN_SLOTS, |_| Ok(()))?.0
                }
                (None, Access::Read) => return Err(AgentError::MissingMap(MAP_HITS)),
            };
            *hits = Some(HitSlots::adopt(array, self.limits.hits));
        }
        f(hits.as_mut().expect("built above"), &mut maps)
    }

    /// `cfg` with each readable set's table geometry and stash levels,
    /// which this layer owns (a set it cannot read keeps what `cfg` says),
    /// and the hit array's fields as `kernel` (the config the kernel holds
    /// now) has them: the hit layer changes them in the kernel alone, and a
    /// caller's copy may be older.
    fn described(&self, cfg: &Config, kernel: &Config) -> Config {
        let mut c = *cfg;
        for (set, m) in self.sets.iter().enumerate() {
            if let Some(m) = m {
                m.describe(&mut c, set);
            }
        }
        c.hit_index = kernel.hit_index;
        c.hit_slots = kernel.hit_slots;
        c
    }

    /// Writes the kernel's config again with this layer's part brought up
    /// to date (after the stash's levels changed).
    fn redescribe(&mut self) -> Result<(), AgentError> {
        let cur = self.config.read()?;
        let c = self.described(&cur, &cur);
        if c != cur {
            self.config.write(&c)?;
        }
        Ok(())
    }

    /// The meta word of slot value `v`, counter slots given to its rules.
    fn meta_of(&self, level_idx: u32, v: &NodeValue) -> Result<u64, AgentError> {
        let [to, from] = self.counted([v.to_cc, v.from_cc])?;
        Ok(node_meta(level_idx, [to, from], v.flags))
    }

    /// `rules` with their counter slots filled in.
    fn counted(&self, rules: [Rule; 2]) -> Result<[Rule; 2], AgentError> {
        let mut out = rules;
        self.count_in_place(out.iter_mut())?;
        Ok(out)
    }

    /// Fills in the counter slot of every rule that acts; one borrow of the
    /// hit table for all of them (a full load counts over a million), and
    /// the array grown at most once.
    fn count_in_place<'r>(
        &self,
        rules: impl Iterator<Item = &'r mut Rule>,
    ) -> Result<(), AgentError> {
        let mut acting: Vec<&mut Rule> = rules.filter(|r| r.action != ACTION_NONE).collect();
        self.with_hits(|h, maps| {
            h.reserve(maps, acting.iter().map(|r| r.entry_id))?;
            // A slot's two sides usually name one entry: the last answer is
            // kept rather than looked up again.
            let mut last = (0, 0);
            for r in &mut acting {
                if r.entry_id != last.0 {
                    last = (r.entry_id, h.assign(maps, r.entry_id)?);
                }
                r.counter = last.1;
            }
            Ok(())
        })
    }
}
