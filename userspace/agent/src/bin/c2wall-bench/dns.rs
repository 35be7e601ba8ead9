//! What following DNS answers costs the program: ns per packet for a DNS
//! response whose name is not listed, one whose name is listed (copied to
//! the answer ring), and a packet that is not DNS, each with N names listed
//! and with none (following off, the program as it was before names), on
//! the same program and the same prefix list.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use aya::programs::Xdp;
use c2wall_agent::{apply::Applier, config::Capacity, engine::Engine, ids::Ids, loader};
use c2wall_agent::{dataplane::Dataplane, source::Snapshot};
use c2wall_common::*;
use c2wall_model::{Action, Direction, Entry, Target};

use crate::cells::{median, ns_per_packet, XDP_PASS};

const RESOLVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// In the subscriber /24 the list generator leaves out.
const SUBSCRIBER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);

fn wire_name(n: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in n.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// A response to an A query for `qname` with two A records.
fn response(qname: &str) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend(wire_name(qname));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for last in [7u8, 8] {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 203, 0, 113, last]);
    }
    m
}

/// An Ethernet/IPv4/UDP frame from `sport` to 40000 carrying `payload`.
fn udp_frame(sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&RESOLVER.octets());
    f.extend_from_slice(&SUBSCRIBER.octets());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// `n` listed names, half exact and half wildcards, spread over many
/// registrable domains as a feed's are.
fn names(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let name = if i % 2 == 0 {
                format!("c{i}.botnet{}.example", i % 997)
            } else {
                format!("*.cc{i}.example")
            };
            Entry {
                target: Target::Domain(name.parse().expect("generated name")),
                scope: None,
                action: Action::Drop,
                direction: Direction::Both,
            }
        })
        .collect()
}

/// The frames measured: not DNS, DNS for an unlisted name (three labels,
/// probing two suffixes), DNS for a listed name.
struct Frames {
    other: Vec<Vec<u8>>,
    unlisted: Vec<Vec<u8>>,
    listed: Vec<Vec<u8>>,
}

fn frames(count: usize, listed_n: usize) -> Frames {
    let msg = |q: &str| response(q);
    Frames {
        other: (0..count)
            .map(|i| udp_frame(4000 + i as u16, &msg("www.example.net")))
            .collect(),
        unlisted: (0..count)
            .map(|i| udp_frame(53, &msg(&format!("host{i}.shop{i}.example"))))
            .collect(),
        listed: (0..count)
            .map(|i| {
                let j = (i * 2) % listed_n.max(2);
                udp_frame(53, &msg(&format!("c{j}.botnet{}.example", j % 997)))
            })
            .collect(),
    }
}

/// ns per packet for the listed frames, draining the ring between frames
/// so each measures a copy (not a full ring).
fn listed_cost(prog: &Xdp, ring: &mut RingBuf<MapData>, f: &[Vec<u8>], repeat: u32) -> Result<f64> {
    let mut total = 0.0;
    for frame in f {
        total += ns_per_packet(prog, std::slice::from_ref(frame), repeat, XDP_PASS)?;
        while ring.next().is_some() {}
    }
    Ok(total / f.len() as f64)
}

/// Rounds of alternating off/on measurements.
const ROUNDS: usize = 7;

/// Prints the DNS table for each names count, on a list of `prefixes`.
pub fn run(sizes: &[usize], prefixes: &[Entry], hot: usize, repeat: u32) -> Result<()> {
    println!();
    println!(
        "DNS following, ns per packet (hot: {hot} packets x {repeat} repeats; copies: x {} with \
         the ring drained), on {} prefix entries; medians of {ROUNDS} alternating off/on \
         rounds; off = following off, as with no names listed; extra = median of the rounds' \
         unlisted on - off",
        repeat.min(400),
        prefixes.len()
    );
    println!(
        "{:>9} {:>12} {:>12} {:>13} {:>13} {:>11} {:>12} {:>12}",
        "names",
        "other off",
        "other on",
        "unlisted off",
        "unlisted on",
        "extra ns",
        "listed on",
        "on/off"
    );
    for &n in sizes {
        let mut ebpf = loader::load_unpinned(loader::OBJECT, PROGRAM_NAME)?;
        let maps = loader::take_maps(&mut ebpf, &Capacity::default())?;
        let mut applier = Applier::adopt(maps)?;
        applier.set_mode(MODE_ENFORCE)?;
        let mut engine = Engine::new(applier, Ids::new(), None);
        let mut ring = RingBuf::try_from(ebpf.take_map(MAP_DNS_ANSWERS).context("answer ring")?)?;
        let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program")?.try_into()?;
        let fr = frames(hot, n);
        let mut entries = prefixes.to_vec();
        entries.extend(names(n));
        engine.sync(&Snapshot {
            entries,
            ..Default::default()
        })?;
        // Off and on alternate, ROUNDS times, and the medians are compared:
        // a drift of the machine between the two phases would otherwise
        // show as a cost. Off is Config.follow = 0, the program's state when
        // no name is listed.
        let mut rounds = [Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            engine.applier.set_follow(0)?;
            let other_off = ns_per_packet(prog, &fr.other, repeat, XDP_PASS)?;
            let unlisted_off = ns_per_packet(prog, &fr.unlisted, repeat, XDP_PASS)?;
            engine.applier.set_follow(FOLLOW_DNS)?;
            let other_on = ns_per_packet(prog, &fr.other, repeat, XDP_PASS)?;
            let unlisted_on = ns_per_packet(prog, &fr.unlisted, repeat, XDP_PASS)?;
            for (r, v) in rounds.iter_mut().zip([
                other_off,
                other_on,
                unlisted_off,
                unlisted_on,
                unlisted_on - unlisted_off,
            ]) {
                r.push(v);
            }
        }
        let [other_off, other_on, unlisted_off, unlisted_on, extra] = rounds.map(median);
        let listed_on = listed_cost(prog, &mut ring, &fr.listed, repeat.min(400))?;
        let copied = engine.applier.dataplane().counters()?[CNT_DNS_FOLLOWED as usize];
        println!(
            "{n:>9} {other_off:>12.1} {other_on:>12.1} {unlisted_off:>13.1} {unlisted_on:>13.1} \
             {:>11.1} {listed_on:>12.1} {:>11.2}x",
            extra,
            unlisted_on / unlisted_off
        );
        anyhow::ensure!(copied > 0, "no listed response was copied");
    }
    println!("(target: a response for an unlisted name at most 60 ns above off at 100,000 names; other packets unchanged)");
    Ok(())
}
