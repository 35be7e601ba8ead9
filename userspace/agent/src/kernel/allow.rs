//! The protected allowlist (two LPM tries).

use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use c2wall_common::*;
use c2wall_model::{Family, Prefix};

use super::{del_ok, put_err};
use crate::error::AgentError;

pub struct Allow {
    pub v4: LpmTrie<MapData, [u8; 4], u32>,
    pub v6: LpmTrie<MapData, [u8; 16], u32>,
}

fn v6_octets(o: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(o);
    a
}

impl Allow {
    pub fn prefixes(&self) -> Result<Vec<Prefix>, AgentError> {
        let err = |map| move |source| AgentError::Map { map, source };
        let mut out = Vec::new();
        for k in self.v4.keys() {
            let k = k.map_err(err(MAP_ALLOW_V4))?;
            let addr = std::net::Ipv4Addr::from(k.data());
            if let Ok(p) = Prefix::new(addr.into(), k.prefix_len() as u8) {
                out.push(p);
            }
        }
        for k in self.v6.keys() {
            let k = k.map_err(err(MAP_ALLOW_V6))?;
            let addr = std::net::Ipv6Addr::from(k.data());
            if let Ok(p) = Prefix::new(addr.into(), k.prefix_len() as u8) {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub fn insert(&mut self, p: &Prefix) -> Result<(), AgentError> {
        let (len, o) = (p.len() as u32, p.octets());
        match p.family() {
            Family::V4 => self
                .v4
                .insert(&Key::new(len, [o[0], o[1], o[2], o[3]]), 0, 0)
                .map_err(put_err(MAP_ALLOW_V4)),
            Family::V6 => self
                .v6
                .insert(&Key::new(len, v6_octets(&o)), 0, 0)
                .map_err(put_err(MAP_ALLOW_V6)),
        }
    }

    pub fn remove(&mut self, p: &Prefix) -> Result<(), AgentError> {
        let (len, o) = (p.len() as u32, p.octets());
        match p.family() {
            Family::V4 => del_ok(
                MAP_ALLOW_V4,
                self.v4.remove(&Key::new(len, [o[0], o[1], o[2], o[3]])),
            ),
            Family::V6 => del_ok(MAP_ALLOW_V6, self.v6.remove(&Key::new(len, v6_octets(&o)))),
        }
    }
}
