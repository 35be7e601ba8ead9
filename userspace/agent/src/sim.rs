//! The XDP program's lookup, replayed over a [`Compiled`] set in plain Rust.
//!
//! It mirrors ebpf/xdp/src/lookup.rs step for step so the compiler can be checked
//! against the reference matcher without root; the kernel tests then check the
//! real program against the same reference.

use std::net::IpAddr;

use c2wall_common::*;
use c2wall_model::{matcher::PacketView, Family, Prefix};

use crate::compile::{slot_of, stride, Compiled, PortSlot};

/// Which side decided and with what rule; `None` if nothing matched.
pub fn decide(set: &Compiled, pkt: &PacketView) -> Option<(bool, Rule)> {
    let to = side(set, pkt, true);
    let from = side(set, pkt, false);
    let (rule, to_cc) = if to.action >= from.action {
        (to, true)
    } else {
        (from, false)
    };
    (rule.action != ACTION_NONE).then_some((to_cc, rule))
}

fn side(set: &Compiled, pkt: &PacketView, to_cc: bool) -> Rule {
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
    let s = stride(family);
    for i in (0..=(family.max_len() / s)).rev() {
        if levels & (1 << i) == 0 {
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
