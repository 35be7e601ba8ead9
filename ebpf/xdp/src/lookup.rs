//! Rule lookup for one side of a packet, and the allowlist check.

use aya_ebpf::maps::lpm_trie::Key;
use c2wall_common::*;
use c2wall_xdp::parse::{v4_in_16, Packet};

use crate::maps::{ALLOW_V4, ALLOW_V6, FILTER, NODES_V4, NODES_V6, PORTS};

/// The rule that decides for one side: the destination (`to_cc`) or the source.
/// `set` is the active rule set; its inner maps are looked up here, per
/// side. Not inlined: a BPF-to-BPF call gives each side's keys their own
/// frame, which keeps the program within the 512-byte stack.
#[inline(never)]
pub fn side_rule(pkt: &Packet, set: u32, cfg: &Config, to_cc: bool) -> Rule {
    let (addr, port) = if to_cc {
        (&pkt.dst, pkt.dport)
    } else {
        (&pkt.src, pkt.sport)
    };
    let found = if pkt.family == FAMILY_V4 {
        find_v4(addr, set, cfg)
    } else {
        find_v6(addr, set, cfg)
    };
    let Some((node, level)) = found else {
        return Rule::default();
    };
    let mut rule = if to_cc { node.to_cc } else { node.from_cc };
    if node.flags & NODE_HAS_PORTS != 0 && pkt.has_ports {
        if let Some(ports) = PORTS.get(set) {
            let key = PortKey {
                addr: slot_addr(addr, pkt.family, level),
                level,
                family: pkt.family,
                proto: pkt.proto,
                _pad0: 0,
                port,
                _pad: [0; 2],
            };
            // SAFETY: NO_PREALLOC map, value copied out immediately.
            if let Some(pv) = unsafe { ports.get(key) } {
                let r = if to_cc { pv.to_cc } else { pv.from_cc };
                if r.action != ACTION_NONE {
                    rule = r;
                }
            }
        }
    }
    rule
}

/// True when the slot filter rules out every level in use for `addr` in
/// rule set `set`: a sure miss, decided without the node maps or a call.
/// Levels the filter does not cover count as possible.
#[inline(always)]
pub fn sure_miss(addr: &[u8; 16], family: u8, set: u32, cfg: &Config) -> bool {
    let s = (set & 1) as usize;
    let bits = cfg.filter_bits[s] as u32;
    let Some(filter) = FILTER.get(set) else {
        return false;
    };
    if family == FAMILY_V4 {
        let levels = cfg.v4_levels[s];
        let first = V4_FILTER_MIN_LEVEL / V4_STRIDE;
        if levels & ((1 << first) - 1) != 0 {
            return false;
        }
        let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
        let Some(b) = filter.get(filter_block_v4(bits, a)) else {
            return false;
        };
        let mut i = first;
        while i < V4_LEVELS {
            if levels & (1 << i) != 0 {
                let level = i * V4_STRIDE;
                if b.has(filter_bit_v4(level, a & (u32::MAX << (32 - level)))) {
                    return false;
                }
            }
            i += 1;
        }
        true
    } else {
        let levels = cfg.v6_levels[s];
        let first = V6_FILTER_MIN_LEVEL / V6_STRIDE;
        if levels & ((1 << first) - 1) != 0 {
            return false;
        }
        let (hi, lo) = halves(addr);
        let Some(b) = filter.get(filter_block_v6(bits, hi)) else {
            return false;
        };
        let mut i = first;
        while i < V6_LEVELS {
            if levels & (1 << i) != 0 {
                let level = i * V6_STRIDE;
                let (h, l) = mask_v6(hi, lo, level);
                if b.has(filter_bit_v6(level, h, l)) {
                    return false;
                }
            }
            i += 1;
        }
        true
    }
}

#[inline(always)]
fn halves(addr: &[u8; 16]) -> (u64, u64) {
    let hi = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let lo = u64::from_be_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    (hi, lo)
}

/// An IPv6 address as two halves masked to `level` bits (BPF has no
/// 128-bit shifts).
#[inline(always)]
fn mask_v6(hi: u64, lo: u64, level: u32) -> (u64, u64) {
    let (mh, ml) = if level == 0 {
        (0, 0)
    } else if level <= 64 {
        (u64::MAX << (64 - level), 0)
    } else if level == 128 {
        (u64::MAX, u64::MAX)
    } else {
        (u64::MAX, u64::MAX << (128 - level))
    };
    (hi & mh, lo & ml)
}

/// The address of the slot at `level` that holds `addr` (port keys name it).
#[inline(always)]
fn slot_addr(addr: &[u8; 16], family: u8, level: u8) -> [u8; 16] {
    if family == FAMILY_V4 {
        let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
        v4_in_16(mask_v4(a, level as u32).to_be_bytes())
    } else {
        let (hi, lo) = halves(addr);
        let (h, l) = mask_v6(hi, lo, level as u32);
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&h.to_be_bytes());
        a[8..].copy_from_slice(&l.to_be_bytes());
        a
    }
}

#[inline(always)]
fn mask_v4(a: u32, level: u32) -> u32 {
    if level == 0 {
        0
    } else {
        a & (u32::MAX << (32 - level))
    }
}

/// The key of the IPv4 slot `masked` at `level`, built as one word (the
/// program is little-endian): field by field, the zeroed padding is a call
/// to a byte-by-byte memset on every probe.
#[inline(always)]
fn v4_key(masked: u32, level: u32) -> V4Key {
    let word = (masked.to_be() as u64) | ((level as u64) << 32);
    // SAFETY: V4Key is 8 bytes of plain data (address, level, zero padding).
    unsafe { core::mem::transmute::<u64, V4Key>(word) }
}

/// The key of the IPv6 slot (h, l) at `level`, built as five words (see
/// [`v4_key`]).
#[inline(always)]
fn v6_key(h: u64, l: u64, level: u32) -> V6Key {
    let (h, l) = (h.to_be(), l.to_be());
    let words = [
        h as u32,
        (h >> 32) as u32,
        l as u32,
        (l >> 32) as u32,
        level,
    ];
    // SAFETY: V6Key is 20 bytes of plain data (address, level, zero padding).
    unsafe { core::mem::transmute::<[u32; 5], V6Key>(words) }
}

/// Longest used level first; the first slot hit is the most specific node.
#[inline(always)]
fn find_v4(addr: &[u8; 16], set: u32, cfg: &Config) -> Option<(NodeValue, u8)> {
    let nodes = NODES_V4.get(set)?;
    let levels = cfg.v4_levels[(set & 1) as usize];
    let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
    let bits = cfg.filter_bits[(set & 1) as usize] as u32;
    let block = FILTER
        .get(set)
        .and_then(|f| f.get(filter_block_v4(bits, a)));
    let mut i = V4_LEVELS;
    while i > 0 {
        i -= 1;
        if levels & (1 << i) == 0 {
            continue;
        }
        let level = i * V4_STRIDE;
        let masked = mask_v4(a, level);
        if level >= V4_FILTER_MIN_LEVEL {
            if let Some(b) = block {
                if !b.has(filter_bit_v4(level, masked)) {
                    continue;
                }
            }
        }
        // SAFETY: NO_PREALLOC map, value copied out immediately.
        if let Some(v) = unsafe { nodes.get(v4_key(masked, level)) } {
            return Some((*v, level as u8));
        }
    }
    None
}

#[inline(always)]
fn find_v6(addr: &[u8; 16], set: u32, cfg: &Config) -> Option<(NodeValue, u8)> {
    let nodes = NODES_V6.get(set)?;
    let levels = cfg.v6_levels[(set & 1) as usize];
    let bits = cfg.filter_bits[(set & 1) as usize] as u32;
    let (hi, lo) = halves(addr);
    let block = FILTER
        .get(set)
        .and_then(|f| f.get(filter_block_v6(bits, hi)));
    let mut i = V6_LEVELS;
    while i > 0 {
        i -= 1;
        if levels & (1 << i) == 0 {
            continue;
        }
        let level = i * V6_STRIDE;
        let (h, l) = mask_v6(hi, lo, level);
        if level >= V6_FILTER_MIN_LEVEL {
            if let Some(b) = block {
                if !b.has(filter_bit_v6(level, h, l)) {
                    continue;
                }
            }
        }
        // SAFETY: NO_PREALLOC map, value copied out immediately.
        if let Some(v) = unsafe { nodes.get(v6_key(h, l, level)) } {
            return Some((*v, level as u8));
        }
    }
    None
}

/// Whether either address is in the protected allowlist; a family whose
/// allowlist is empty (`allow` bits of the config) costs nothing. Not
/// inlined: the trie keys get a frame of their own (stack, see sample()).
#[inline(never)]
pub fn allowlisted(pkt: &Packet, allow: u8) -> bool {
    if pkt.family == FAMILY_V4 {
        if allow & ALLOW_HAS_V4 == 0 {
            return false;
        }
        let s = [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]];
        let d = [pkt.dst[0], pkt.dst[1], pkt.dst[2], pkt.dst[3]];
        ALLOW_V4.get(Key::new(32, d)).is_some() || ALLOW_V4.get(Key::new(32, s)).is_some()
    } else {
        if allow & ALLOW_HAS_V6 == 0 {
            return false;
        }
        ALLOW_V6.get(Key::new(128, pkt.dst)).is_some()
            || ALLOW_V6.get(Key::new(128, pkt.src)).is_some()
    }
}
