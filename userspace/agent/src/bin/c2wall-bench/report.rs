//! The benchmark's tables after the per-packet ones: loading, memory and
//! deltas per list size, and the live-frame receive path.

use crate::agent::AgentRun;
use crate::wire::Cost;
use crate::Args;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One list size's loading and memory figures.
pub struct Load {
    pub n: usize,
    pub compile_s: f64,
    /// The list file read and parsed (part of `load_s`).
    pub parse_s: f64,
    /// File to enforced.
    pub load_s: f64,
    pub slots: usize,
    pub c2_mem: u64,
    /// xdp-filter: load seconds, host entries it holds, kernel memory.
    pub filt: Option<(f64, usize, u64)>,
    pub naive_load: f64,
    pub naive_mem: u64,
    /// One entry added to and withdrawn from the loaded list, in ms.
    pub delta_ms: (f64, f64),
    /// Resident memory the agent's engine took to load the list.
    pub engine_rss: u64,
}

/// One program's live-frame figures at one list size: IPv4 and IPv6 hits.
pub struct WireRow {
    pub n: usize,
    /// The c2wall list size it was measured beside (interleaved with).
    pub beside: usize,
    pub program: &'static str,
    pub cost: [Cost; 2],
}

pub fn loads(loads: &[Load]) {
    println!();
    println!(
        "{:>9} {:>10} {:>10} {:>10} {:>10} {:>11} {:>12} {:>10} {:>10} {:>11} {:>10}",
        "entries",
        "compile s",
        "parse s",
        "c2 load s",
        "slots",
        "c2 MiB",
        "filt load s",
        "filt hosts",
        "filt MiB",
        "naive load s",
        "naive MiB"
    );
    for l in loads {
        let (fl, fe, fm) = match l.filt {
            Some((a, b, c)) => (format!("{a:.2}"), b.to_string(), format!("{:.1}", mib(c))),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:>9} {:>10.2} {:>10.2} {:>10.2} {:>10} {:>11.1} {fl:>12} {fe:>10} {fm:>10} {:>11.2} {:>10.1}",
            l.n,
            l.compile_s,
            l.parse_s,
            l.load_s,
            l.slots,
            mib(l.c2_mem),
            l.naive_load,
            mib(l.naive_mem)
        );
    }
    println!();
    println!(
        "{:>9} {:>14} {:>19} {:>16}",
        "entries", "delta add ms", "delta withdraw ms", "engine RSS MiB"
    );
    for l in loads {
        println!(
            "{:>9} {:>14.3} {:>19.3} {:>16.1}",
            l.n,
            l.delta_ms.0,
            l.delta_ms.1,
            mib(l.engine_rss)
        );
    }
}

/// The sender's CPU per frame for family `i` (0: IPv4), pooled over all
/// cells (see wire.rs): the total of their sender time over their frames.
fn pooled_sender(rows: &[WireRow], i: usize) -> f64 {
    let (t, f) = rows.iter().fold((0.0, 0u64), |(t, f), r| {
        let c = &r.cost[i];
        (t + c.sender_ns * c.frames as f64, f + c.frames)
    });
    t / f.max(1) as f64
}

/// The receive-path table, c2wall's ratios to xdp-filter at each size, and
/// the target: c2wall at the largest size against xdp-filter at the
/// smallest (its own tool holds no more than a few thousand entries).
pub fn wire(rows: &[WireRow], args: &Args) {
    if rows.is_empty() {
        return;
    }
    let sender = [pooled_sender(rows, 0), pooled_sender(rows, 1)];
    let rx = |r: &WireRow, i: usize| r.cost[i].total_ns - sender[i];
    println!();
    println!(
        "receive path, live frames over veth to {} listed addresses per family (program attached natively, sender pinned to CPU {}, {} ms per cell in {} slices interleaved with the other programs): \
         ns of CPU per dropped frame; total = the CPU's time per frame, sender = its non-softirq share pooled over \
         all cells ({:.1} ns IPv4, {:.1} ns IPv6), rx = total - sender (veth's NAPI poll, the program, the drop)",
        args.wire_flows,
        args.wire_cpu,
        args.wire_ms,
        args.rounds.max(1),
        sender[0],
        sender[1]
    );
    println!(
        "{:>9} {:<17} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "entries", "program", "rx4", "total4", "rx6", "total6", "frames/ticks"
    );
    for r in rows {
        let [a, b] = &r.cost;
        let label = if r.beside == r.n {
            r.program.to_string()
        } else {
            format!("{} (in {}'s rounds)", r.program, r.beside)
        };
        println!(
            "{:>9} {:<17} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>14}",
            r.n,
            label,
            rx(r, 0),
            a.total_ns,
            rx(r, 1),
            b.total_ns,
            format!("{}k/{}", (a.frames + b.frames) / 1000, a.ticks + b.ticks)
        );
        if r.program == "xdp-filter" && r.beside == r.n {
            if let Some(c) = rows
                .iter()
                .find(|c| c.n == r.n && c.beside == r.n && c.program == "c2wall")
            {
                println!(
                    "{:>9} {:<17} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
                    r.n,
                    "c2wall/xdp-filter",
                    rx(c, 0) / rx(r, 0),
                    c.cost[0].total_ns / a.total_ns,
                    rx(c, 1) / rx(r, 1),
                    c.cost[1].total_ns / b.total_ns
                );
            }
        }
    }
    let c2 = rows
        .iter()
        .filter(|r| r.program == "c2wall")
        .max_by_key(|r| r.n);
    // xdp-filter at the smallest size, from the rounds it shared with
    // c2wall at the largest when it was measured there.
    let filt = c2.and_then(|c| {
        rows.iter()
            .filter(|r| r.program == "xdp-filter")
            .min_by_key(|r| (r.n, r.beside != c.n))
    });
    if let (Some(c), Some(f)) = (c2, filt) {
        println!(
            "receive path, c2wall at {} vs xdp-filter at {} (measured in the same rounds: {}): IPv4 {:.2}x, IPv6 {:.2}x (target <= 1.2x)",
            c.n,
            f.n,
            if f.beside == c.n { "yes" } else { "no" },
            rx(c, 0) / rx(f, 0),
            rx(c, 1) / rx(f, 1)
        );
    }
}

pub fn agent(a: &AgentRun) {
    println!();
    println!(
        "agent process (c2wall-agent -i VETH --blocklist FILE), {} entries: ready in {:.2} s \
         (start, program loaded and attached, the file enforced: /readyz)",
        a.entries, a.ready_s
    );
    for (when, m) in [("at ready", &a.at_ready), ("5 s later", &a.settled)] {
        println!(
            "  {when}: resident {:.1} MiB: its own {:.1} MiB, the BPF tables it maps {:.1} MiB \
             (kernel memory, counted above too); peak so far {:.1} MiB",
            mib(m.rss),
            mib(m.anon),
            mib(m.mapped),
            mib(m.peak)
        );
    }
}
