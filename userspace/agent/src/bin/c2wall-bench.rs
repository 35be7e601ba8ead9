//! `c2wall-bench`: per-packet cost of the XDP program via BPF_PROG_TEST_RUN, at
//! several list sizes, against the naive two-LPM-trie design; and the time to
//! load the list. Needs root. Not a test: it prints figures.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use anyhow::{Context, Result};
use aya::{
    maps::{lpm_trie::Key, LpmTrie, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use c2wall_agent::{
    apply::Applier, compile::compile, config::Capacity, engine::Engine, ids::Ids, loader, sim,
    source::Snapshot,
};
use c2wall_common::*;
use c2wall_model::{matcher::PacketView, Action, Direction, Entry, PortScope, Prefix, Protocol};
use clap::Parser;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Parser)]
#[command(
    about = "Benchmark the c2wall XDP program against a naive two-LPM-trie program.",
    long_about = "Benchmark the c2wall XDP program against a naive two-LPM-trie program.\n\n\
        For each list size: builds a deterministic, realistic list (mostly /32 and /128, \
        some IPv4 /16-/24 and IPv6 /32-/64, some port-scoped), loads it into both programs, \
        and measures ns per packet with BPF_PROG_TEST_RUN for packets that miss and packets \
        that hit, IPv4 and IPv6.\n\
        hot  = the same packet repeated (caches warm), averaged over distinct packets;\n\
        cold = a different address on every run (repeat 1, includes the test-run timer overhead, \
        identical for both programs)."
)]
struct Args {
    /// List sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1_000, 100_000, 1_000_000])]
    sizes: Vec<usize>,
    /// Distinct packets per hot measurement.
    #[arg(long, default_value_t = 128)]
    hot_packets: usize,
    /// Repeats of each hot packet.
    #[arg(long, default_value_t = 2000)]
    repeat: u32,
    /// Distinct packets in the cold measurement.
    #[arg(long, default_value_t = 20_000)]
    cold_packets: usize,
    /// Small sizes and few packets: a CI smoke run that checks the command works.
    #[arg(long)]
    quick: bool,
}

const SUB4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SUB6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x10);

/// The realistic mix: 85% IPv4 hosts, 9% IPv6 hosts, 3% IPv4 /16-/24, 1% IPv6
/// /32-/64, 2% port-scoped IPv4 hosts (tcp 443/8080/447, udp 53).
fn make_list(n: usize, seed: u64) -> Vec<Entry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let sub_net: Prefix = "198.51.100.0/24".parse().unwrap();
    while out.len() < n {
        let r = rng.random_range(0..100);
        let (prefix, scope) = match r {
            0..85 => (Prefix::host(IpAddr::V4(rng.random::<u32>().into())), None),
            85..94 => (Prefix::host(IpAddr::V6(rand_v6(&mut rng))), None),
            94..97 => {
                let len = rng.random_range(16..=24);
                (masked(IpAddr::V4(rng.random::<u32>().into()), len), None)
            }
            97..98 => {
                let len = rng.random_range(32..=64);
                (masked(IpAddr::V6(rand_v6(&mut rng)), len), None)
            }
            _ => {
                let (protocol, port) = [
                    (Protocol::Tcp, 443),
                    (Protocol::Tcp, 8080),
                    (Protocol::Tcp, 447),
                    (Protocol::Udp, 53),
                ][rng.random_range(0..4)];
                (
                    Prefix::host(IpAddr::V4(rng.random::<u32>().into())),
                    Some(PortScope { protocol, port }),
                )
            }
        };
        if sub_net.contains(&prefix)
            || prefix.contains_addr(IpAddr::V4(SUB4))
            || prefix.contains_addr(IpAddr::V6(SUB6))
        {
            continue;
        }
        let e = Entry {
            prefix,
            scope,
            action: Action::Drop,
            direction: Direction::Both,
        };
        if seen.insert(e.identity()) {
            out.push(e);
        }
    }
    out
}

fn rand_v6(rng: &mut StdRng) -> Ipv6Addr {
    // Global unicast 2000::/3.
    let v: u128 = rng.random::<u128>() & (u128::MAX >> 3) | (1u128 << 125);
    v.into()
}

fn masked(a: IpAddr, len: u8) -> Prefix {
    let h = Prefix::host(a);
    let bits = h.bits() & (u128::MAX << (128 - len as u32));
    let addr = match a {
        IpAddr::V4(_) => IpAddr::V4(((bits >> 96) as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    };
    Prefix::new(addr, len).unwrap()
}

fn frame(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let udp = |f: &mut Vec<u8>| {
        f.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 16, 0, 0]);
        f.extend_from_slice(&[0xab; 8]);
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 16, 17, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    udp(&mut f);
    f
}

struct Probes {
    miss4: Vec<Vec<u8>>,
    miss6: Vec<Vec<u8>>,
    hit4: Vec<Vec<u8>>,
    hit6: Vec<Vec<u8>>,
}

fn probes(list: &[Entry], n: usize, seed: u64) -> Probes {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ids = Ids::new();
    let (with_ids, _) = ids.assign(list);
    let table = compile(&with_ids);
    let sim = sim::Sim::new(&table);
    let misses = |rng: &mut StdRng, v6: bool| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < n {
            let (src, dst) = if v6 {
                (IpAddr::V6(SUB6), IpAddr::V6(rand_v6(rng)))
            } else {
                (IpAddr::V4(SUB4), IpAddr::V4(rng.random::<u32>().into()))
            };
            let view = PacketView {
                src,
                dst,
                ports: Some((Protocol::Udp, 40000, 443)),
            };
            if sim.decide(&view).is_none() {
                out.push(frame(src, dst));
            }
        }
        out
    };
    let hosts = |v6: bool| -> Vec<IpAddr> {
        list.iter()
            .filter(|e| e.prefix.is_host() && e.scope.is_none() && e.prefix.addr().is_ipv6() == v6)
            .map(|e| e.prefix.addr())
            .collect()
    };
    let hits = |rng: &mut StdRng, v6: bool| -> Vec<Vec<u8>> {
        let h = hosts(v6);
        let src = if v6 {
            IpAddr::V6(SUB6)
        } else {
            IpAddr::V4(SUB4)
        };
        (0..n)
            .map(|_| frame(src, h[rng.random_range(0..h.len())]))
            .collect()
    };
    Probes {
        miss4: misses(&mut rng, false),
        miss6: misses(&mut rng, true),
        hit4: hits(&mut rng, false),
        hit6: hits(&mut rng, true),
    }
}

fn ns_per_packet(prog: &Xdp, frames: &[Vec<u8>], repeat: u32, expect: u32) -> Result<f64> {
    let mut total = 0f64;
    for f in frames {
        let r = prog.test_run(TestRunOptions {
            data_in: Some(f),
            repeat,
            ..Default::default()
        })?;
        anyhow::ensure!(
            r.return_value == expect,
            "unexpected verdict {} (want {expect})",
            r.return_value
        );
        total += r.duration.as_nanos() as f64;
    }
    Ok(total / frames.len() as f64)
}

/// One table row: hot miss/hit for both families, then cold misses.
fn measure(prog: &Xdp, p: &Probes, args: &Args) -> Result<[f64; 6]> {
    let (h, c, r) = (args.hot_packets, args.cold_packets, args.repeat);
    Ok([
        ns_per_packet(prog, &p.miss4[..h], r, XDP_PASS)?,
        ns_per_packet(prog, &p.miss6[..h], r, XDP_PASS)?,
        ns_per_packet(prog, &p.hit4[..h], r, XDP_DROP)?,
        ns_per_packet(prog, &p.hit6[..h], r, XDP_DROP)?,
        ns_per_packet(prog, &p.miss4[..c], 1, XDP_PASS)?,
        ns_per_packet(prog, &p.miss6[..c], 1, XDP_PASS)?,
    ])
}

fn print_row(n: usize, name: &str, r: &[f64; 6]) {
    println!(
        "{n:>9} {name:<8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        r[0], r[1], r[2], r[3], r[4], r[5]
    );
}

fn program<'a>(ebpf: &'a Ebpf, name: &str) -> &'a Xdp {
    ebpf.program(name).unwrap().try_into().unwrap()
}

fn load_naive(list: &[Entry]) -> Result<(Ebpf, f64)> {
    let mut ebpf = loader::load_unpinned(
        loader::NAIVE_OBJECT,
        NAIVE_PROGRAM_NAME,
        &Capacity::default(),
    )?;
    let start = Instant::now();
    let mut v4: LpmTrie<MapData, [u8; 4], Rule> =
        LpmTrie::try_from(ebpf.take_map(MAP_NAIVE_V4).context("naive v4 map")?)?;
    let mut v6: LpmTrie<MapData, [u8; 16], Rule> =
        LpmTrie::try_from(ebpf.take_map(MAP_NAIVE_V6).context("naive v6 map")?)?;
    for (i, e) in list.iter().enumerate() {
        let rule = Rule {
            entry_id: i as u32 + 1,
            action: ACTION_DROP,
            _pad: [0; 3],
        };
        let o = e.prefix.octets();
        let len = e.prefix.len() as u32;
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

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.sizes = vec![1_000, 10_000];
        args.hot_packets = 16;
        args.repeat = 200;
        args.cold_packets = 500;
    }
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "c2wall-bench needs root (BPF_PROG_TEST_RUN)"
    );
    println!(
        "c2wall-bench: ns per packet via BPF_PROG_TEST_RUN ({} CPUs); hot = {} packets x {} repeats, cold = {} distinct packets x 1",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.hot_packets,
        args.repeat,
        args.cold_packets
    );
    println!(
        "{:>9} {:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "entries",
        "program",
        "miss4 hot",
        "miss6 hot",
        "hit4 hot",
        "hit6 hot",
        "miss4 cold",
        "miss6 cold"
    );
    let mut loads = Vec::new();
    let mut miss_hot = Vec::new();
    for &n in &args.sizes {
        let list = make_list(n, 42);
        let p = probes(&list, args.hot_packets.max(args.cold_packets), 7);

        let cap = Capacity::default();
        let mut ebpf = loader::load_unpinned(loader::OBJECT, PROGRAM_NAME, &cap)?;
        let maps = loader::take_maps(&mut ebpf, &cap)?;
        let mut applier = Applier::adopt(maps)?;
        applier.set_mode(MODE_ENFORCE)?;
        let mut engine = Engine::new(applier, Ids::new(), None);
        let t = Instant::now();
        let mut ids = Ids::new();
        let (with_ids, _) = ids.assign(&list);
        let compiled = compile(&with_ids);
        let compile_s = t.elapsed().as_secs_f64();
        let slots = compiled.nodes.len() + compiled.ports.len();
        drop(compiled);
        let t = Instant::now();
        let snap = Snapshot {
            entries: list.clone(),
            ..Default::default()
        };
        engine.sync(&snap)?;
        let load_s = t.elapsed().as_secs_f64();
        let row = measure(program(&ebpf, PROGRAM_NAME), &p, &args)?;
        print_row(n, "c2wall", &row);
        miss_hot.push((n, row[0], row[1]));
        drop(engine);
        drop(ebpf);

        let (naive, naive_load) = load_naive(&list)?;
        let row = measure(program(&naive, NAIVE_PROGRAM_NAME), &p, &args)?;
        print_row(n, "naive", &row);
        loads.push((n, compile_s, load_s, slots, naive_load));
    }
    println!();
    println!(
        "{:>9} {:>12} {:>14} {:>12} {:>16}",
        "entries", "compile s", "load total s", "slots", "naive load s"
    );
    for (n, c, l, s, nl) in &loads {
        println!("{n:>9} {c:>12.2} {l:>14.2} {s:>12} {nl:>16.2}");
    }
    if let (Some(first), Some(last)) = (miss_hot.first(), miss_hot.last()) {
        println!();
        println!(
            "miss cost growth {} -> {} entries: IPv4 {:.2}x, IPv6 {:.2}x (target <= 1.5x)",
            first.0,
            last.0,
            last.1 / first.1,
            last.2 / first.2
        );
    }
    Ok(())
}
