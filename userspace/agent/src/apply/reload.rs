//! Full reload: a new set of maps, sized to the table, filled while packets
//! still read the old set, then one flip of `Config::active_set`.

use std::time::Instant;

use super::{Applier, ApplyStats};
use crate::compile::{filter_blocks, Compiled};
use crate::dataplane::{Dataplane, SetSize, GRACE};
use crate::error::AgentError;
use crate::ops::level_counts;
use crate::sizing::set_size;

impl<D: Dataplane> Applier<D> {
    /// Full reload into the inactive set and an atomic flip.
    pub fn reload(&mut self, new: Compiled) -> Result<ApplyStats, AgentError> {
        let start = Instant::now();
        let size = set_size(&new, self.dp.capacity())?;
        let active = (self.cfg.active_set & 1) as u8;
        let next = 1 - active;
        let mut writes = 0;
        let written = std::thread::scope(|s| {
            // The filter is built on another core while the set's maps are
            // made and its tables filled; it goes in last, which is as good:
            // no packet reads the set before the flip.
            let building = s.spawn(|| filter_blocks(&new, size.filter_bits));
            let write = || -> Result<(), AgentError> {
                self.dp.reset_set(next, size)?;
                writes += self.dp.fill(next, &new.nodes, &new.ports)?;
                let filter = building.join().expect("the filter thread does not panic");
                writes += self.dp.put_filters(next, &filter)?;
                Ok(())
            };
            write()
        });
        if let Err(e) = written {
            // The active set was never touched; drop what we wrote.
            self.release(next, None);
            return Err(e);
        }
        let mut c = self.cfg;
        c.v4_levels[next as usize] = new.v4_levels;
        c.v6_levels[next as usize] = new.v6_levels;
        c.filter_bits[next as usize] = size.filter_bits;
        self.dp.write_config(&c)?;
        c.active_set = next as u32;
        self.dp.write_config(&c)?;
        self.cfg = c;
        let flipped = Instant::now();
        let (old4, old6, oldp) = self.slot_counts();
        self.level_counts = level_counts(&new);
        self.levels = (new.v4_levels, new.v6_levels);
        // The node slots are in the set now; this copy goes (see `ports`).
        self.ports = new.ports;
        self.stale = false;
        self.release(active, Some(flipped));
        Ok(ApplyStats {
            reload: true,
            writes,
            deletes: old4 + old6 + oldp,
            elapsed: start.elapsed(),
        })
    }

    /// Gives a set packets do not read empty minimal maps (its memory goes
    /// back to the kernel); `inactive_since`: when packets stopped reading
    /// it, to wait out the [`GRACE`] of those still inside the program.
    fn release(&mut self, set: u8, inactive_since: Option<Instant>) {
        // Already the empty minimal maps (a first load): swapping in new
        // ones would only wait out a grace period per map.
        if self.dp.set_size(set) == SetSize::EMPTY {
            return;
        }
        if let Some(t) = inactive_since {
            std::thread::sleep(GRACE.saturating_sub(t.elapsed()));
        }
        if let Err(e) = self.dp.reset_set(set, SetSize::EMPTY) {
            tracing::warn!(error = %e, set, "releasing the inactive rule set's maps");
        }
    }
}
