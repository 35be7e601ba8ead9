//! The naive peer: the same parser and counters as c2wall with two
//! LPM-trie lookups (`ebpf/xdp/src/bin/naive.rs`), loaded with the list.

use std::time::Instant;

use anyhow::{Context, Result};
use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use aya::Ebpf;
use c2wall_agent::loader;
use c2wall_common::*;
use c2wall_model::Entry;

/// Loads the program and inserts every entry; returns it with the
/// seconds the inserts took.
pub fn load(list: &[Entry]) -> Result<(Ebpf, f64)> {
    let mut ebpf = loader::load_unpinned(loader::NAIVE_OBJECT, NAIVE_PROGRAM_NAME)?;
    let start = Instant::now();
    let mut v4: LpmTrie<MapData, [u8; 4], Rule> =
        LpmTrie::try_from(ebpf.take_map(MAP_NAIVE_V4).context("naive v4 map")?)?;
    let mut v6: LpmTrie<MapData, [u8; 16], Rule> =
        LpmTrie::try_from(ebpf.take_map(MAP_NAIVE_V6).context("naive v6 map")?)?;
    for (i, e) in list.iter().enumerate() {
        let rule = Rule {
            entry_id: i as u32 + 1,
            counter: 0,
            action: ACTION_DROP,
            _pad: [0; 3],
        };
        let o = e.listed_prefix().unwrap().octets();
        let len = e.listed_prefix().unwrap().len() as u32;
        if o.len() == 4 {
            v4.insert(&Key::new(len, [o[0], o[1], o[2], o[3]]), rule, 0)?;
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&o);
            v6.insert(&Key::new(len, a), rule, 0)?;
        }
    }
    // Keep the maps alive with the program.
    std::mem::forget(v4);
    std::mem::forget(v6);
    Ok((ebpf, start.elapsed().as_secs_f64()))
}
