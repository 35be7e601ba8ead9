//! The receive-path rows: programs under live frames (wire.rs), measured
//! in interleaved slices so the programs compared share the machine's
//! moment (as the per-packet table does, cells.rs).

use anyhow::Result;
use aya::programs::Xdp;

use crate::list::Probes;
use crate::{report, wire, Args};

/// One program under live frames: its label, the list size it holds,
/// the program, and probes of that list (every frame must hit).
pub struct Contender<'a> {
    pub label: &'static str,
    pub n: usize,
    pub prog: &'a mut Xdp,
    pub probes: &'a Probes,
}

/// The receive-path rows of `contenders`, measured beside c2wall at list
/// size `beside`: `--wire-flows` of each one's IPv4 and IPv6 hit frames,
/// round robin, sent over the wire in `--rounds` interleaved slices of
/// `--wire-ms` (the order rotating), each program's slices pooled.
pub fn live(
    w: &wire::Wire,
    contenders: &mut [Contender],
    beside: usize,
    args: &Args,
) -> Result<Vec<report::WireRow>> {
    let rounds = args.rounds.max(1);
    let slice = std::time::Duration::from_millis(args.wire_ms) / rounds as u32;
    let mut costs: Vec<[Vec<wire::Cost>; 2]> = contenders
        .iter()
        .map(|_| [Vec::new(), Vec::new()])
        .collect();
    for v6 in [false, true] {
        for round in 0..rounds {
            for k in 0..contenders.len() {
                let i = (round + k) % contenders.len();
                let c = &mut contenders[i];
                let hits = if v6 { &c.probes.hit6 } else { &c.probes.hit4 };
                let flows = args.wire_flows.clamp(1, hits.len());
                let cost = w.cost(c.prog, &hits[..flows], args.wire_cpu, slice)?;
                costs[i][v6 as usize].push(cost);
            }
        }
    }
    Ok(contenders
        .iter()
        .zip(costs)
        .map(|(c, [v4, v6])| report::WireRow {
            n: c.n,
            beside,
            program: c.label,
            cost: [wire::Cost::pool(&v4), wire::Cost::pool(&v6)],
        })
        .collect())
}
