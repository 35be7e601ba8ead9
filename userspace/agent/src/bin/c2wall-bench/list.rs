//! The benchmark's list (a realistic mix of prefixes) and its probe packets.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use c2wall_agent::{compile::compile, ids, sim};
use c2wall_model::{matcher::PacketView, Action, Direction, Entry, PortScope, Prefix, Protocol};
use rand::{rngs::StdRng, Rng, SeedableRng};

const SUB4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SUB6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x10);

/// The realistic mix: 85% IPv4 hosts, 9% IPv6 hosts, 3% IPv4 /16-/24, 1% IPv6
/// /32-/64, 2% port-scoped IPv4 hosts (tcp 443/8080/447, udp 53).
pub fn make_list(n: usize, seed: u64) -> Vec<Entry> {
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
            target: prefix.into(),
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

pub struct Probes {
    pub miss4: Vec<Vec<u8>>,
    pub miss6: Vec<Vec<u8>>,
    pub hit4: Vec<Vec<u8>>,
    pub hit6: Vec<Vec<u8>>,
}

pub fn probes(list: &[Entry], n: usize, seed: u64) -> Probes {
    let mut rng = StdRng::seed_from_u64(seed);
    let with_ids = ids::fresh(list);
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
            .filter(|e| {
                e.listed_prefix().unwrap().is_host()
                    && e.scope.is_none()
                    && e.listed_prefix().unwrap().addr().is_ipv6() == v6
            })
            .map(|e| e.listed_prefix().unwrap().addr())
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

/// A blocklist file holding a list, removed on drop.
pub struct ListFile(pub std::path::PathBuf);

impl ListFile {
    pub fn write(list: &[Entry]) -> anyhow::Result<ListFile> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("c2wall-bench-{}.list", std::process::id()));
        let f = ListFile(path);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f.0)?);
        for e in list {
            writeln!(w, "{e}")?;
        }
        w.flush()?;
        Ok(f)
    }
}

impl Drop for ListFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
