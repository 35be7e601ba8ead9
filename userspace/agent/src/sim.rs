//! The XDP program's lookup, replayed over a [`Compiled`] set in plain Rust.
//!
//! It mirrors ebpf/xdp/src/lookup.rs step for step so the compiler can be checked
//! against the reference matcher without root; the kernel tests then check the
//! real program against the same reference.

use std::net::IpAddr;

use c2wall_common::*;
use c2wall_model::{matcher::PacketView, Family, Prefix};

use crate::compile::{filter_blocks, halves, slot_of, stride, Compiled, PortSlot};

/// A set's filter blocks and its size (`1 << bits` blocks).
type SimFilter = (crate::fastmap::FastMap<u32, FilterBlock>, u32);

/// A compiled set with its filter, ready to answer lookups.
pub struct Sim<'a> {
    set: &'a Compiled,
    filter: SimFilter,
}

impl<'a> Sim<'a> {
    /// The filter is sized as a reload sizes it for this set.
    pub fn new(set: &'a Compiled) -> Self {
        let (n4, n6, _) = set.slot_counts();
        let bits = crate::sizing::filter_bits(n4 + n6);
        Sim {
            set,
            filter: (filter_blocks(set, bits), bits as u32),
        }
    }

    /// Which side decided and with what rule; `None` if nothing matched.
    pub fn decide(&self, pkt: &PacketView) -> Option<(bool, Rule)> {
        decide_with(self.set, &self.filter, pkt)
    }
}

fn decide_with(set: &Compiled, filter: &SimFilter, pkt: &PacketView) -> Option<(bool, Rule)> {
    let to = side(set, filter, pkt, true);
    let from = side(set, filter, pkt, false);
    let (rule, to_cc) = if to.action >= from.action {
        (to, true)
    } else {
        (from, false)
    };
    (rule.action != ACTION_NONE).then_some((to_cc, rule))
}

fn side(set: &Compiled, filter: &SimFilter, pkt: &PacketView, to_cc: bool) -> Rule {
    let (filter, bits) = (&filter.0, filter.1);
    let (addr, port) = if to_cc {
        (pkt.dst, pkt.ports.map(|(p, _, d)| (p, d)))
    } else {
        (pkt.src, pkt.ports.map(|(p, s, _)| (p, s)))
    };
    let host = Prefix::host(addr);
    let family = host.family();
    let levels = match family {
        Family::V4 => set.v4_levels,
        Family::V6 => set.v6_levels,
    };
    // The filter is consulted from the packet's address once, as in the
    // kernel: the levels it leaves are the ones probed.
    let s = stride(family);
    let candidates = match family {
        Family::V4 => {
            let a = (host.bits() >> 96) as u32;
            let b = filter
                .get(&filter_block_v4(bits, a))
                .copied()
                .unwrap_or_default();
            b.possible_v4(a)
        }
        Family::V6 => {
            let (hi, lo) = halves(&(host.bits().to_be_bytes()));
            let b = filter
                .get(&filter_block_v6(bits, hi))
                .copied()
                .unwrap_or_default();
            b.possible_v6(hi, lo)
        }
    };
    for i in (0..=(family.max_len() / s)).rev() {
        if levels & candidates & (1 << i) == 0 {
            continue;
        }
        let level = i * s;
        let masked = Prefix::new(truncate(addr, level), level).expect("masked");
        let slot = slot_of(&masked);
        let Some(node) = set.nodes.get(&slot) else {
            continue;
        };
        let mut rule = if to_cc { node.to_cc } else { node.from_cc };
        if node.flags & NODE_HAS_PORTS != 0 {
            if let Some((proto, port)) = port {
                let key = PortSlot {
                    node: slot,
                    proto: proto.number(),
                    port,
                };
                if let Some(pv) = set.ports.get(&key) {
                    let r = if to_cc { pv.to_cc } else { pv.from_cc };
                    if r.action != ACTION_NONE {
                        rule = r;
                    }
                }
            }
        }
        return rule;
    }
    Rule::default()
}

fn truncate(addr: IpAddr, len: u8) -> IpAddr {
    let host = Prefix::host(addr);
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    };
    let bits = host.bits() & m;
    match addr {
        IpAddr::V4(_) => IpAddr::V4(((bits >> 96) as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}
