//! Random blocklists dense in overlaps, and probe packets at their edges.

use std::{collections::HashSet, net::IpAddr};

use c2wall_model::{matcher::PacketView, Action, Direction, Entry, PortScope, Prefix, Protocol};
use rand::{rngs::StdRng, Rng, SeedableRng};

const PORTS: [u16; 3] = [53, 443, 8080];

fn addr(rng: &mut StdRng, v6: bool) -> IpAddr {
    // Few distinct high bits so prefixes nest and overlap often.
    if v6 {
        let hi: u128 = 0x2001_0db8 << 96;
        let mid = (rng.random_range(0..4u128)) << 88;
        let low: u128 = if rng.random_bool(0.5) {
            rng.random_range(0..16)
        } else {
            rng.random::<u128>() & ((1 << 88) - 1)
        };
        IpAddr::V6((hi | mid | low).into())
    } else {
        let a = 0x0a00_0000u32 | (rng.random_range(0..4u32) << 16) | rng.random_range(0..1024u32);
        IpAddr::V4(a.into())
    }
}

fn prefix(rng: &mut StdRng, v6: bool) -> Prefix {
    let a = addr(rng, v6);
    let len = if v6 {
        *[24u8, 32, 33, 40, 47, 48, 56, 63, 64, 96, 120, 127, 128]
            .get(rng.random_range(0..13))
            .unwrap()
    } else {
        rng.random_range(8..=32)
    };
    let host = Prefix::host(a);
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    };
    let bits = host.bits() & m;
    let masked = match a {
        IpAddr::V4(_) => IpAddr::V4(((bits >> 96) as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    };
    Prefix::new(masked, len).expect("canonical")
}

/// A random list (unique identities) and a random allowlist.
pub fn list(seed: u64, n: usize) -> (Vec<Entry>, Vec<Prefix>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let v6 = rng.random_bool(0.4);
        let scope = rng.random_bool(0.3).then(|| PortScope {
            protocol: if rng.random_bool(0.5) {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            port: PORTS[rng.random_range(0..3)],
        });
        let e = Entry {
            target: (prefix(&mut rng, v6)).into(),
            scope,
            action: if rng.random_bool(0.7) {
                Action::Drop
            } else {
                Action::Monitor
            },
            direction: [
                Direction::Both,
                Direction::Both,
                Direction::To,
                Direction::From,
            ][rng.random_range(0..4)],
        };
        if seen.insert(e.identity()) {
            out.push(e);
        }
    }
    let allow = (0..rng.random_range(0..3))
        .map(|_| {
            let v6 = rng.random_bool(0.4);
            prefix(&mut rng, v6)
        })
        .collect();
    (out, allow)
}

fn edge_addrs(p: &Prefix) -> Vec<IpAddr> {
    let span = if p.len() == 0 {
        u128::MAX
    } else {
        !(u128::MAX << (128 - p.len() as u32))
    };
    let shift = if p.family() == c2wall_model::Family::V4 {
        96
    } else {
        0
    };
    let one = 1u128 << shift;
    let first = p.bits();
    let last = p.bits() | span;
    let mut v = vec![first, last, first.wrapping_sub(one), last.wrapping_add(one)];
    v.retain(|b| shift == 0 || b & ((1u128 << 96) - 1) == 0);
    v.into_iter()
        .map(|b| match p.family() {
            c2wall_model::Family::V4 => IpAddr::V4(((b >> 96) as u32).into()),
            c2wall_model::Family::V6 => IpAddr::V6(b.into()),
        })
        .collect()
}

/// Probe packets: every prefix's first and last address and the neighbours just
/// outside, as source and as destination, plus random addresses; random
/// transport (ports from the same small set the entries use).
pub fn probes(seed: u64, entries: &[Entry], n_random: usize) -> Vec<PacketView> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let mut addrs: Vec<IpAddr> = entries
        .iter()
        .flat_map(|e| edge_addrs(&e.listed_prefix().unwrap()))
        .collect();
    for _ in 0..n_random {
        let v6 = rng.random_bool(0.4);
        addrs.push(addr(&mut rng, v6));
    }
    let sub4: IpAddr = "198.51.100.10".parse().unwrap();
    let sub6: IpAddr = "2001:db8:ffff::10".parse().unwrap();
    let mut out = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let other = match a {
            IpAddr::V4(_) => sub4,
            IpAddr::V6(_) => sub6,
        };
        // Sometimes the other side is listed too.
        let other = if rng.random_bool(0.2) {
            let same: Vec<&IpAddr> = addrs
                .iter()
                .filter(|b| b.is_ipv4() == a.is_ipv4())
                .collect();
            *same[rng.random_range(0..same.len())]
        } else {
            other
        };
        let ports = match rng.random_range(0..3) {
            0 => None,
            1 => Some((
                Protocol::Tcp,
                PORTS[rng.random_range(0..3)],
                PORTS[rng.random_range(0..3)],
            )),
            _ => Some((
                Protocol::Udp,
                PORTS[rng.random_range(0..3)],
                PORTS[rng.random_range(0..3)],
            )),
        };
        let (src, dst) = if i % 2 == 0 { (other, *a) } else { (*a, other) };
        out.push(PacketView { src, dst, ports });
    }
    out
}
