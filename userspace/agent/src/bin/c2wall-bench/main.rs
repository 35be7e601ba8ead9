//! `c2wall-bench`: per-packet cost of the XDP program via BPF_PROG_TEST_RUN, at
//! several list sizes, against its peers in the same run: xdp-filter's shipped
//! program (Debian's xdp-tools, exact addresses only) and the naive
//! two-LPM-trie design; the time to load the list and the kernel memory of
//! each. Needs root. Not a test: it prints figures.

mod agent;
mod cells;
mod dns;
mod list;
mod live;
mod naive;
mod report;
mod wire;
mod xdpfilt;

use list::{make_list, probes, ListFile, Probes};
use live::{live, Contender};
use report::Load;

use std::time::Instant;

use anyhow::{Context, Result};
use aya::{
    maps::{ArrayOfMaps, Map, MapData},
    programs::Xdp,
    Ebpf,
};
use c2wall_agent::{
    apply::Applier,
    compile::compile,
    config::Capacity,
    engine::Engine,
    ids::{self, Ids},
    kernel::memory,
    loader,
    source::{file::FileSource, BlocklistSource},
};
use c2wall_common::*;
use c2wall_model::Entry;
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Benchmark the c2wall XDP program against xdp-filter's and a naive two-LPM-trie program.",
    long_about = "Benchmark the c2wall XDP program against its peers in one run: xdp-filter's \
        shipped program (Debian xdp-tools' xdpfilt_alw_ip.o, exact addresses only, its maps \
        enlarged to the list's host entries) and a naive two-LPM-trie program.\n\n\
        For each list size: builds a deterministic, realistic list (mostly /32 and /128, \
        some IPv4 /16-/24 and IPv6 /32-/64, some port-scoped), loads it into each program, \
        and measures ns per packet with BPF_PROG_TEST_RUN for packets that miss and packets \
        that hit, IPv4 and IPv6; then the load time, the kernel memory of each program's \
        maps (the memlock the kernel reports) and c2wall's ratio to each peer; for c2wall \
        also the time to apply a single-entry delta to the loaded list and the resident \
        memory its engine took to load it. The programs are loaded side by side and \
        measured in interleaved rounds (--rounds): each cell shows each program's median, \
        each ratio the median of the rounds' ratios.\n\
        hot  = the same packet repeated (caches warm), averaged over distinct packets;\n\
        cold = a different address on every run (repeat 1, includes the test-run timer overhead, \
        identical for both programs)."
)]
pub struct Args {
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
    /// Listed DNS names for the DNS-following table (on a 10,000-entry
    /// prefix list).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1_000, 100_000])]
    names: Vec<usize>,
    /// Milliseconds of live frames per receive-path cell (0: skip the
    /// receive-path table).
    #[arg(long, default_value_t = 2000)]
    wire_ms: u64,
    /// Distinct flows (destination addresses, each listed) in the live
    /// frames: a few busy C&C servers by default; raise it (up to the cold
    /// packets) to spread hits over the list, which adds cache misses for
    /// every program alike.
    #[arg(long, default_value_t = 128)]
    wire_flows: usize,
    /// The CPU the live-frame sender (and so the receive path) runs on.
    #[arg(long, default_value_t = 1)]
    wire_cpu: usize,
    /// Rounds per cell: every program is measured once in each round, the
    /// order rotating; the table shows medians (see cells.rs). Live frames
    /// split `--wire-ms` into as many slices per program.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Small sizes and few packets: a CI smoke run that checks the command works.
    #[arg(long)]
    quick: bool,
}

fn program<'a>(ebpf: &'a Ebpf, name: &str) -> &'a Xdp {
    ebpf.program(name).unwrap().try_into().unwrap()
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    Ok(ebpf.program_mut(name).context("program")?.try_into()?)
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The time to apply a single-entry delta (add, then withdraw) to the
/// loaded list, as a coordinator delta reaches the agent.
fn single_entry_delta(engine: &mut Engine<c2wall_agent::kernel::KernelMaps>) -> Result<(f64, f64)> {
    // In the subscriber /24 the list generator leaves out.
    let e = Entry {
        target: "198.51.100.77/32".parse()?,
        scope: None,
        action: c2wall_model::Action::Drop,
        direction: c2wall_model::Direction::Both,
    };
    let t = Instant::now();
    engine.sync_changes(&[(e.identity(), Some(e.clone()))])?;
    let add = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    engine.sync_changes(&[(e.identity(), None)])?;
    Ok((add, t.elapsed().as_secs_f64() * 1e3))
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    // As the agent runs.
    c2wall_agent::engine::map_large_allocations();
    if args.quick {
        args.sizes = vec![1_000, 10_000];
        args.hot_packets = 16;
        args.repeat = 200;
        args.cold_packets = 500;
        args.names = vec![1_000, 10_000];
        args.wire_ms = 200;
    }
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "c2wall-bench needs root (BPF_PROG_TEST_RUN)"
    );
    println!(
        "c2wall-bench: ns per packet via BPF_PROG_TEST_RUN ({} CPUs); hot = {} packets x {} repeats, cold = {} distinct packets x 1; \
         medians of {} rounds, the programs interleaved in each (ratios: the median of the rounds' ratios)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.hot_packets,
        args.repeat,
        args.cold_packets,
        args.rounds
    );
    cells::header();
    let mut loads = Vec::new();
    let mut wires = Vec::new();
    let wire = (args.wire_ms > 0).then(wire::Wire::new).transpose()?;
    let mut miss_hot = Vec::new();
    // xdp-filter at the first size, kept for the receive path's target.
    let mut small_filt: Option<(usize, Ebpf, Probes)> = None;
    for &n in &args.sizes {
        let list = make_list(n, 42);
        let p = probes(&list, args.hot_packets.max(args.cold_packets), 7);

        let cap = Capacity::default();
        let mut ebpf = loader::load_unpinned(loader::OBJECT, PROGRAM_NAME)?;
        let maps = loader::take_maps(&mut ebpf, &cap)?;
        let mut applier = Applier::adopt(maps)?;
        applier.set_mode(MODE_ENFORCE)?;
        // Sampling as deployed: the default budget of drop events.
        applier.set_sample_budget(DEFAULT_SAMPLE_BUDGET)?;
        let mut engine = Engine::new(applier, Ids::new(), None);
        let t = Instant::now();
        let with_ids = ids::fresh(&list);
        let compiled = compile(&with_ids);
        let compile_s = t.elapsed().as_secs_f64();
        let slots = compiled.nodes.len() + compiled.ports.len();
        drop(compiled);
        // Free heap memory (the list's generation, the probes' reference
        // table) goes back first, or the engine would reuse it unseen.
        c2wall_agent::engine::release_freed_memory();
        // As the agent loads a list: the file read and parsed, then enforced.
        let file = ListFile::write(&list)?;
        let rss_before = rss();
        let t = Instant::now();
        let snap = FileSource {
            blocklists: vec![file.0.clone()],
            allowlist: None,
        }
        .snapshot()?;
        let parse_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            snap.entries.len() == list.len() && snap.rejected.is_empty(),
            "the list file reads back as {} entries, {} rejected",
            snap.entries.len(),
            snap.rejected.len()
        );
        engine.sync(&snap)?;
        let load_s = t.elapsed().as_secs_f64();
        drop(file);
        let engine_rss = rss().saturating_sub(rss_before);
        let delta_ms = single_entry_delta(&mut engine)?;
        let c2_mem = maps_memlock(program(&ebpf, PROGRAM_NAME))?;

        // The peers, loaded beside it: every program is measured in each
        // round (cells.rs).
        let mut filt = None;
        let mut filt_ebpf = None;
        if xdpfilt::object().is_some() {
            let pins = std::path::PathBuf::from(format!(
                "/sys/fs/bpf/c2wall-bench-{}",
                std::process::id()
            ));
            let loaded = xdpfilt::load(&list, &pins);
            let _ = std::fs::remove_dir_all(&pins);
            let (f, f_load, f_entries) = loaded?;
            let mem = maps_memlock(program(&f, xdpfilt::PROGRAM))?;
            filt = Some((f_load, f_entries, mem));
            filt_ebpf = Some(f);
        }
        let (naive, naive_load) = naive::load(&list)?;
        let naive_mem = maps_memlock(program(&naive, NAIVE_PROGRAM_NAME))?;

        let mut progs = vec![("c2wall", program(&ebpf, PROGRAM_NAME))];
        if let Some(f) = &filt_ebpf {
            progs.push(("xdp-filter", program(f, xdpfilt::PROGRAM)));
        }
        progs.push(("naive", program(&naive, NAIVE_PROGRAM_NAME)));
        let measured = cells::measure(&progs.iter().map(|p| p.1).collect::<Vec<_>>(), &p, &args)?;
        cells::print_row(n, "c2wall", &measured.rows[0]);
        for (i, (name, _)) in progs.iter().enumerate().skip(1) {
            cells::print_row(n, name, &measured.rows[i]);
            cells::print_ratio(n, name, &measured.ratios[i - 1]);
        }
        let c2 = measured.rows[0];
        miss_hot.push((n, c2[0], c2[1]));

        if let Some(w) = &wire {
            let mut contenders = vec![Contender {
                label: "c2wall",
                n,
                prog: program_mut(&mut ebpf, PROGRAM_NAME)?,
                probes: &p,
            }];
            if let Some(f) = &mut filt_ebpf {
                contenders.push(Contender {
                    label: "xdp-filter",
                    n,
                    prog: program_mut(f, xdpfilt::PROGRAM)?,
                    probes: &p,
                });
            }
            // xdp-filter at the smallest size as well, for the target's
            // ratio (its own tool holds no more than a few thousand).
            if let Some((small, f, small_probes)) = &mut small_filt {
                contenders.push(Contender {
                    label: "xdp-filter",
                    n: *small,
                    prog: program_mut(f, xdpfilt::PROGRAM)?,
                    probes: small_probes,
                });
            }
            wires.extend(live(w, &mut contenders, n, &args)?);
        }
        drop(naive);
        drop(engine);
        drop(ebpf);
        if small_filt.is_none() {
            small_filt = filt_ebpf.map(|f| (n, f, p));
        }

        loads.push(Load {
            delta_ms,
            engine_rss,
            n,
            compile_s,
            parse_s,
            load_s,
            slots,
            c2_mem,
            filt,
            naive_load,
            naive_mem,
        });
    }
    if xdpfilt::object().is_none() {
        println!("(xdp-filter's program is not installed: apt-get install xdp-tools to compare)");
    }
    report::loads(&loads);
    // The agent process itself, started as deployed, on the largest list.
    if let Some(&n) = args.sizes.iter().max() {
        let file = ListFile::write(&make_list(n, 42))?;
        match agent::run(&file.0, n)? {
            Some(run) => report::agent(&run),
            None => {
                println!("\n(c2wall-agent is not built beside c2wall-bench: no agent-process row)")
            }
        }
    }
    report::wire(&wires, &args);
    dns::run(
        &args.names,
        &make_list(10_000, 42),
        args.hot_packets,
        args.repeat,
    )?;
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

/// Kernel memory of a program's maps: the `memlock` the kernel reports
/// for each (what it charges for the map), summed, with the inner maps of
/// every array of maps.
fn maps_memlock(prog: &Xdp) -> Result<u64> {
    let mut total = 0;
    for id in prog.info()?.map_ids()?.unwrap_or_default() {
        let data = MapData::from_id(id)?;
        total += memory::memlock(&data)?;
        if let Map::ArrayOfMaps(outer) = Map::from_map_data(data)? {
            let outer: ArrayOfMaps<MapData, MapData> =
                ArrayOfMaps::try_from(Map::ArrayOfMaps(outer))?;
            for i in 0..outer.len() {
                if let Ok(inner) = outer.get(&i, 0) {
                    total += memory::memlock(&inner)?;
                }
            }
        }
    }
    Ok(total)
}
