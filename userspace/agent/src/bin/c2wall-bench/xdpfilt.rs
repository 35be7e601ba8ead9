//! The peer that ships with Debian's xdp-tools: xdp-filter's default-allow IP
//! program (`xdpfilt_alw_ip.o`: policy allow, listed addresses dropped), exact source/destination addresses in two
//! per-CPU hash maps (no prefixes: only the list's host entries go in),
//! with its maps enlarged to the list, loaded as xdp-filter would load it
//! but from this process with private maps.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use aya::{
    maps::{MapData, PerCpuHashMap, PerCpuValues},
    programs::Xdp,
    util::nr_cpus,
    Ebpf, EbpfLoader,
};
use c2wall_model::Entry;

pub const PROGRAM: &str = "xdpfilt_alw_ip";
/// MAP_FLAG_SRC | MAP_FLAG_DST: match either side.
const BOTH_SIDES: u64 = 3;

pub fn object() -> Option<PathBuf> {
    let p = PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/bpf/xdpfilt_alw_ip.o",
        std::env::consts::ARCH
    ));
    p.exists().then_some(p)
}

/// Loads the program with the list's host entries; returns it with the
/// seconds the map writes took and the number of entries it holds.
pub fn load(list: &[Entry], pins: &std::path::Path) -> Result<(Ebpf, f64, usize)> {
    let path = object().context("xdp-filter's program (Debian xdp-tools) is not installed")?;
    let hosts4: Vec<[u8; 4]> = hosts(list, 4);
    let hosts6: Vec<[u8; 16]> = hosts(list, 16);
    let bytes = std::fs::read(&path)?;
    // Its maps are pinned by name; give them a directory of their own.
    std::fs::create_dir_all(pins)?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins)
        .map_max_entries("filter_ipv4", hosts4.len().max(1) as u32)
        .map_max_entries("filter_ipv6", hosts6.len().max(1) as u32)
        .load(&bytes)
        .with_context(|| format!("loading {}", path.display()))?;
    let prog: &mut Xdp = ebpf.program_mut(PROGRAM).context(PROGRAM)?.try_into()?;
    prog.load()?;
    let cpus = nr_cpus().map_err(|(m, e)| anyhow::anyhow!("{m}: {e}"))?;
    let value = || PerCpuValues::try_from(vec![BOTH_SIDES; cpus]).expect("one per CPU");
    let start = Instant::now();
    let mut v4: PerCpuHashMap<&mut MapData, [u8; 4], u64> =
        PerCpuHashMap::try_from(ebpf.map_mut("filter_ipv4").context("filter_ipv4")?)?;
    for k in &hosts4 {
        v4.insert(k, value(), 0)?;
    }
    let mut v6: PerCpuHashMap<&mut MapData, [u8; 16], u64> =
        PerCpuHashMap::try_from(ebpf.map_mut("filter_ipv6").context("filter_ipv6")?)?;
    for k in &hosts6 {
        v6.insert(k, value(), 0)?;
    }
    Ok((
        ebpf,
        start.elapsed().as_secs_f64(),
        hosts4.len() + hosts6.len(),
    ))
}

fn hosts<const N: usize>(list: &[Entry], len: usize) -> Vec<[u8; N]> {
    list.iter()
        .filter(|e| e.listed_prefix().unwrap().is_host() && e.scope.is_none())
        .map(|e| e.listed_prefix().unwrap().octets())
        .filter(|o| o.len() == len)
        .map(|o| o.as_slice().try_into().expect("length checked"))
        .collect()
}
