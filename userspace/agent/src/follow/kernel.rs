//! The program's name map and its filter, written from the listed names'
//! keys. Kept here as last written, so each sync writes only differences.

use std::collections::HashMap;

use c2wall_common::filter_bit;

use crate::dataplane::Dataplane;
use crate::error::AgentError;

#[derive(Debug, Default)]
pub struct NameMaps {
    keys: HashMap<u64, u32>,
    /// Non-zero filter words.
    filter: HashMap<u32, u64>,
}

fn filter_of(keys: &HashMap<u64, u32>) -> HashMap<u32, u64> {
    let mut f = HashMap::new();
    for k in keys.keys() {
        let (word, bit) = filter_bit(*k);
        *f.entry(word).or_insert(0) |= bit;
    }
    f
}

impl NameMaps {
    /// What the maps hold now (adopted from an earlier agent).
    pub fn read<D: Dataplane>(dp: &D) -> Result<Self, AgentError> {
        Ok(NameMaps {
            keys: dp.names()?,
            filter: dp.name_filter()?,
        })
    }

    /// Makes the maps hold `want`. The filter gains its new bits before any
    /// name goes in and loses its old ones after the names are gone, so a
    /// listed key never sits behind a clear bit. On error, what was written
    /// is remembered and the next call writes the rest.
    pub fn write<D: Dataplane>(
        &mut self,
        dp: &mut D,
        want: &HashMap<u64, u32>,
    ) -> Result<(), AgentError> {
        let final_filter = filter_of(want);
        for (w, bits) in &final_filter {
            let now = self.filter.get(w).copied().unwrap_or(0);
            if now | bits != now {
                dp.put_name_filter(*w, now | bits)?;
                self.filter.insert(*w, now | bits);
            }
        }
        for (k, f) in want {
            if self.keys.get(k) != Some(f) {
                dp.put_name(*k, *f)?;
                self.keys.insert(*k, *f);
            }
        }
        let gone: Vec<u64> = self
            .keys
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            dp.del_name(k)?;
            self.keys.remove(&k);
        }
        let words: Vec<u32> = self.filter.keys().copied().collect();
        for w in words {
            let target = final_filter.get(&w).copied().unwrap_or(0);
            if self.filter.get(&w) != Some(&target) {
                dp.put_name_filter(w, target)?;
                if target == 0 {
                    self.filter.remove(&w);
                } else {
                    self.filter.insert(w, target);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::MemDataplane;
    use c2wall_common::{name_key, DNS_NAME_EXACT};

    #[test]
    fn the_filter_covers_every_key_and_empties_with_the_names() {
        let mut dp = MemDataplane::new();
        let mut maps = NameMaps::default();
        let keys: HashMap<u64, u32> = ["a.example", "b.example", "c.example"]
            .iter()
            .map(|n| (name_key(n), DNS_NAME_EXACT))
            .collect();
        maps.write(&mut dp, &keys).expect("write");
        assert_eq!(dp.names, keys);
        for k in keys.keys() {
            let (w, bit) = filter_bit(*k);
            assert_ne!(dp.name_filter.get(&w).copied().unwrap_or(0) & bit, 0);
        }
        // A failed write leaves the maps consistent with what is recorded;
        // the next write finishes the job.
        dp.fail_after = Some(0);
        assert!(maps.write(&mut dp, &HashMap::new()).is_err());
        maps.write(&mut dp, &HashMap::new()).expect("write");
        assert!(dp.names.is_empty());
        assert!(dp.name_filter.is_empty());
    }
}
