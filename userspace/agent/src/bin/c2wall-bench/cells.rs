//! The per-packet table: each program's ns per packet in six cells (hot
//! miss and hit for both families, cold misses), measured in interleaved
//! rounds so the programs compared share the machine's moment.
//!
//! Why rounds: on a shared or virtual machine the cost of the same program
//! drifts by tens of percent over seconds, more than the differences this
//! table is for. Measuring every program within each cell, round after
//! round (the order rotating), and taking medians leaves each ratio with
//! measurements made milliseconds apart.

use anyhow::Result;
use aya::programs::{TestRun, TestRunOptions, Xdp};

use crate::list::Probes;
use crate::Args;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// One program's medians per cell.
pub type Row = [f64; 6];

pub fn ns_per_packet(prog: &Xdp, frames: &[Vec<u8>], repeat: u32, expect: u32) -> Result<f64> {
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

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians of `progs` (the first is c2wall) per cell, and per peer (the
/// others, in order) the median of c2wall's per-round ratio to it.
pub struct Cells {
    pub rows: Vec<Row>,
    pub ratios: Vec<Row>,
}

/// Measures `progs` in `args.rounds` interleaved rounds per cell.
pub fn measure(progs: &[&Xdp], p: &Probes, args: &Args) -> Result<Cells> {
    let (h, c, r) = (args.hot_packets, args.cold_packets, args.repeat);
    let cells: [(&[Vec<u8>], u32, u32); 6] = [
        (&p.miss4[..h], r, XDP_PASS),
        (&p.miss6[..h], r, XDP_PASS),
        (&p.hit4[..h], r, XDP_DROP),
        (&p.hit6[..h], r, XDP_DROP),
        (&p.miss4[..c], 1, XDP_PASS),
        (&p.miss6[..c], 1, XDP_PASS),
    ];
    let rounds = args.rounds.max(1);
    let mut rows = vec![[0.0; 6]; progs.len()];
    let mut ratios = vec![[0.0; 6]; progs.len().saturating_sub(1)];
    for (ci, &(frames, repeat, expect)) in cells.iter().enumerate() {
        // One row of samples per round, one sample per program.
        let mut samples = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut row = vec![0.0; progs.len()];
            for k in 0..progs.len() {
                let i = (round + k) % progs.len();
                row[i] = ns_per_packet(progs[i], frames, repeat, expect)?;
            }
            samples.push(row);
        }
        for (i, r) in rows.iter_mut().enumerate() {
            r[ci] = median(samples.iter().map(|s| s[i]).collect());
        }
        for (peer, ratio) in ratios.iter_mut().enumerate() {
            ratio[ci] = median(samples.iter().map(|s| s[0] / s[peer + 1]).collect());
        }
    }
    Ok(Cells { rows, ratios })
}

pub fn header() {
    println!(
        "{:>9} {:<17} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "entries",
        "program",
        "miss4 hot",
        "miss6 hot",
        "hit4 hot",
        "hit6 hot",
        "miss4 cold",
        "miss6 cold"
    );
}

pub fn print_row(n: usize, name: &str, r: &Row) {
    println!(
        "{n:>9} {name:<17} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        r[0], r[1], r[2], r[3], r[4], r[5]
    );
}

/// c2wall's cost as a multiple of a peer's, per column (the median of the
/// rounds' ratios).
pub fn print_ratio(n: usize, peer: &str, r: &Row) {
    println!(
        "{n:>9} {:<17} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
        format!("c2wall/{peer}"),
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5]
    );
}
