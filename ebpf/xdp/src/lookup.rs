//! Rule lookup for one side of a packet, and the allowlist check.

use aya_ebpf::maps::lpm_trie::Key;
use c2wall_common::*;
use c2wall_xdp::parse::Packet;

use crate::maps::{ALLOW_V4, ALLOW_V6, NODES_V4, NODES_V6, PORTS};

/// The rule that decides for one side: the destination (`to_cc`) or the source.
#[inline(always)]
pub fn side_rule(pkt: &Packet, set: u32, levels: u32, to_cc: bool) -> Rule {
    let (addr, port) = if to_cc {
        (&pkt.dst, pkt.dport)
    } else {
        (&pkt.src, pkt.sport)
    };
    let found = if pkt.family == FAMILY_V4 {
        find_v4(addr, set, levels)
    } else {
        find_v6(addr, set, levels)
    };
    let Some((node, slot_addr, level)) = found else {
        return Rule::default();
    };
    let mut rule = if to_cc { node.to_cc } else { node.from_cc };
    if node.flags & NODE_HAS_PORTS != 0 && pkt.has_ports {
        let key = PortKey {
            addr: slot_addr,
            level,
            set: set as u8,
            family: pkt.family,
            proto: pkt.proto,
            port,
            _pad: [0; 2],
        };
        // SAFETY: NO_PREALLOC map, value copied out immediately.
        if let Some(pv) = unsafe { PORTS.get(&key) } {
            let r = if to_cc { pv.to_cc } else { pv.from_cc };
            if r.action != ACTION_NONE {
                rule = r;
            }
        }
    }
    rule
}

/// Longest used level first; the first slot hit is the most specific node.
#[inline(always)]
fn find_v4(addr: &[u8; 16], set: u32, levels: u32) -> Option<(NodeValue, [u8; 16], u8)> {
    let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
    let mut i = V4_LEVELS;
    while i > 0 {
        i -= 1;
        if levels & (1 << i) == 0 {
            continue;
        }
        let level = i * V4_STRIDE;
        let masked = if level == 0 {
            0
        } else {
            a & (u32::MAX << (32 - level))
        };
        let key = V4Key {
            addr: masked.to_be_bytes(),
            level: level as u8,
            set: set as u8,
            _pad: [0; 2],
        };
        // SAFETY: NO_PREALLOC map, value copied out immediately.
        if let Some(v) = unsafe { NODES_V4.get(&key) } {
            let mut slot = [0u8; 16];
            slot[..4].copy_from_slice(&key.addr);
            return Some((*v, slot, level as u8));
        }
    }
    None
}

#[inline(always)]
fn find_v6(addr: &[u8; 16], set: u32, levels: u32) -> Option<(NodeValue, [u8; 16], u8)> {
    let mut i = V6_LEVELS;
    while i > 0 {
        i -= 1;
        if levels & (1 << i) == 0 {
            continue;
        }
        // The IPv6 stride is one byte: masking keeps the first i bytes.
        let mut key = V6Key {
            addr: [0; 16],
            level: (i * V6_STRIDE) as u8,
            set: set as u8,
            _pad: [0; 2],
        };
        let mut b = 0;
        while b < 16 {
            if b < i as usize {
                key.addr[b] = addr[b];
            }
            b += 1;
        }
        // SAFETY: NO_PREALLOC map, value copied out immediately.
        if let Some(v) = unsafe { NODES_V6.get(&key) } {
            return Some((*v, key.addr, key.level));
        }
    }
    None
}

#[inline(always)]
pub fn allowlisted(pkt: &Packet) -> bool {
    if pkt.family == FAMILY_V4 {
        let s = [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]];
        let d = [pkt.dst[0], pkt.dst[1], pkt.dst[2], pkt.dst[3]];
        ALLOW_V4.get(Key::new(32, d)).is_some() || ALLOW_V4.get(Key::new(32, s)).is_some()
    } else {
        ALLOW_V6.get(Key::new(128, pkt.dst)).is_some()
            || ALLOW_V6.get(Key::new(128, pkt.src)).is_some()
    }
}
