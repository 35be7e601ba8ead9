//! The program's one config element. Several layers own fields of it (the
//! applier the mode and the active set, the rule sets their geometry, the
//! hit counters the array packets count in); each writes whole elements,
//! but changes one field per write, so a packet racing a write sees the old
//! or the new value of that field and never half of two changes.

use std::cell::RefCell;

use aya::maps::{Array, MapData};
use c2wall_common::{Config, MAP_CONFIG};

use super::put_err;
use crate::error::AgentError;

pub struct ConfigMap(RefCell<Array<MapData, Config>>);

impl ConfigMap {
    pub fn new(map: Array<MapData, Config>) -> ConfigMap {
        ConfigMap(RefCell::new(map))
    }

    /// The element as the kernel holds it now.
    pub fn read(&self) -> Result<Config, AgentError> {
        self.0
            .borrow()
            .get(&0, 0)
            .map_err(|source| AgentError::Map {
                map: MAP_CONFIG,
                source,
            })
    }

    pub fn write(&self, c: &Config) -> Result<(), AgentError> {
        self.0
            .borrow_mut()
            .set(0, c, 0)
            .map_err(put_err(MAP_CONFIG))
    }

    /// The kernel's element with `change` made to it, written back unless
    /// nothing changed.
    pub fn update(&self, change: impl FnOnce(&mut Config)) -> Result<(), AgentError> {
        let cur = self.read()?;
        let mut c = cur;
        change(&mut c);
        if c != cur {
            self.write(&c)?;
        }
        Ok(())
    }
}
