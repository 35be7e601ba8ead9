//! Rule lookup for one side of a packet, and the allowlist check.

use aya_ebpf::maps::lpm_trie::Key;
use c2wall_common::*;
use c2wall_xdp::parse::{v4_in_16, Packet};

use crate::maps::{
    NodesV4, NodesV6, ALLOW_V4, ALLOW_V6, CONFIG, FILTER, NODES_V4, NODES_V6, PORTS, STASH_V4,
    STASH_V6,
};

/// The meta word of the most specific slot that holds `addr` in rule set
/// `set` (0: none), through the global lookups (see [`c2w_find_v4`]).
/// Called from the program's main frame, not from [`side_rule`], so the
/// deepest call chain stays within the 512-byte stack.
#[inline(always)]
pub fn find(addr: &[u8; 16], family: u8, set: u32) -> u64 {
    if family == FAMILY_V4 {
        let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
        c2w_find_v4(set as u64, a as u64)
    } else {
        let (hi, lo) = halves(addr);
        c2w_find_v6(set as u64, hi, lo)
    }
}

/// The rule that decides for one side: the destination (`to_cc`) or the
/// source, given the slot [`find`] found for it (`meta`). The port map is
/// read (in a call of its own) only under a slot that has port rules.
#[inline(always)]
pub fn side_rule(pkt: &Packet, set: u32, meta: u64, to_cc: bool) -> Rule {
    let (action, counter) = if to_cc {
        meta_to(meta)
    } else {
        meta_from(meta)
    };
    // The entry id is looked up from the counter slot only for a sampled
    // event (verdict.rs).
    let rule = Rule {
        entry_id: 0,
        counter,
        action,
        _pad: [0; 3],
    };
    if meta & META_PORTS != 0 && pkt.has_ports {
        let p = port_rule(pkt, set, meta, to_cc);
        if p != 0 {
            return Rule {
                entry_id: 0,
                counter: p as u32,
                action: (p >> 32) as u8,
                _pad: [0; 3],
            };
        }
    }
    rule
}

/// The port rule under the slot of `meta` for the packet's protocol and
/// C&C-side port, as `counter | action << 32` (0: none). Not inlined: the
/// port key gets a frame of its own; a number, not a Rule, comes back so the
/// call needs no pointer to the caller's stack.
#[inline(never)]
fn port_rule(pkt: &Packet, set: u32, meta: u64, to_cc: bool) -> u64 {
    let (addr, port) = if to_cc {
        (&pkt.dst, pkt.dport)
    } else {
        (&pkt.src, pkt.sport)
    };
    let stride = if pkt.family == FAMILY_V4 {
        V4_STRIDE
    } else {
        V6_STRIDE
    };
    let Some(idx) = meta_level(meta) else {
        return 0;
    };
    let level = (idx * stride) as u8;
    let Some(ports) = PORTS.get(set) else {
        return 0;
    };
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
    match unsafe { ports.get(key) } {
        Some(pv) => {
            let r = if to_cc { pv.to_cc } else { pv.from_cc };
            if r.action != ACTION_NONE {
                r.counter as u64 | ((r.action as u64) << 32)
            } else {
                0
            }
        }
        None => 0,
    }
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

/// All ones when `d` is zero, else zero: a compare without a branch (BPF
/// has no conditional move), which keeps the verifier's paths per level
/// few and the CPU's branch predictor out of the probe.
#[inline(always)]
fn all_if_zero(d: u64) -> u64 {
    (((d | d.wrapping_neg()) >> 63) ^ 1).wrapping_neg()
}

/// The live meta word of IPv4 slot (`masked`, `want`) in bucket `b`, or 0.
#[inline(always)]
fn scan_v4(table: &NodesV4, b: u32, masked: u32, want: u64) -> u64 {
    let Some(bucket) = table.get(b) else {
        return 0;
    };
    let mut found = 0;
    for e in 0..BUCKET_ENTRIES {
        // Meta word first, then the address (see table.rs).
        // SAFETY: in-bounds reads of the bucket the map returned.
        let m = unsafe { core::ptr::read_volatile(&bucket.meta[e]) };
        let a = unsafe { core::ptr::read_volatile(&bucket.addr[e]) };
        found |= m & all_if_zero(((m & META_KEY_MASK) ^ want) | (a ^ masked) as u64);
    }
    found
}

#[inline(always)]
fn scan_v6(table: &NodesV6, b: u32, h: u64, l: u64, want: u64) -> u64 {
    let Some(bucket) = table.get(b) else {
        return 0;
    };
    let mut found = 0;
    for e in 0..BUCKET_ENTRIES {
        // SAFETY: as in scan_v4.
        let m = unsafe { core::ptr::read_volatile(&bucket.meta[e]) };
        let ah = unsafe { core::ptr::read_volatile(&bucket.addr[e][0]) };
        let al = unsafe { core::ptr::read_volatile(&bucket.addr[e][1]) };
        found |= m & all_if_zero(((m & META_KEY_MASK) ^ want) | (ah ^ h) | (al ^ l));
    }
    found
}

/// The meta word of the most specific live slot that holds IPv4 address
/// `a` (native order) in rule set `set`, or 0: longest used level first.
///
/// A global function: the verifier checks it once, on its own, with its
/// arguments and result as unknown numbers. Inlined (or a static call), it
/// was checked anew on every path that leads to a lookup, and the program
/// went past the verifier's budget of a million instructions.
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_find_v4(set: u64, a: u64) -> u64 {
    find_v4(a as u32, set as u32).unwrap_or(0)
}

/// [`c2w_find_v4`] for IPv6 address (hi, lo).
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_find_v6(set: u64, hi: u64, lo: u64) -> u64 {
    find_v6(hi, lo, set as u32).unwrap_or(0)
}

/// Set, bucket count and level index in one argument: a BPF call takes at
/// most five.
#[inline(always)]
fn pack(set: u32, n: u32, idx: u32) -> u64 {
    (set & 1) as u64 | ((idx as u64) << 8) | ((n as u64) << 32)
}

/// One level's probe of the IPv4 table: the meta word of slot (`masked`,
/// level index) if live in its first bucket, then its second, else 0. Global for the same
/// reason as [`c2w_find_v4`]: checked once, not once per path through the
/// level loop.
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_probe_v4(packed: u64, seed: u64, masked: u64) -> u64 {
    let Some(table) = NODES_V4.get((packed & 1) as u32) else {
        return 0;
    };
    let idx = ((packed >> 8) & 0xff) as u32;
    let (first, second) = buckets(hash_v4(seed, masked as u32, idx), (packed >> 32) as u32);
    let want = meta_key(idx);
    let m = scan_v4(table, first, masked as u32, want);
    if m != 0 {
        return m;
    }
    scan_v4(table, second, masked as u32, want)
}

/// [`c2w_probe_v4`] for the IPv6 table.
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_probe_v6(packed: u64, seed: u64, h: u64, l: u64) -> u64 {
    let Some(table) = NODES_V6.get((packed & 1) as u32) else {
        return 0;
    };
    let idx = ((packed >> 8) & 0xff) as u32;
    let (first, second) = buckets(hash_v6(seed, h, l, idx), (packed >> 32) as u32);
    let want = meta_key(idx);
    let m = scan_v6(table, first, h, l, want);
    if m != 0 {
        return m;
    }
    scan_v6(table, second, h, l, want)
}

#[inline(always)]
fn find_v4(a: u32, set: u32) -> Option<u64> {
    let cfg = CONFIG.get(0)?;
    let s = (set & 1) as usize;
    let (n, seed, stashed) = (cfg.v4_buckets[s], cfg.table_seed[s], cfg.stash_v4_levels[s]);
    let levels = cfg.v4_levels[s];
    let bits = cfg.filter_bits[s] as u32;
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
        if n != 0 {
            let m = c2w_probe_v4(pack(set, n, i), seed, masked as u64);
            if m != 0 {
                return Some(m);
            }
        }
        if stashed & (1 << i) != 0 {
            let stash = STASH_V4.get(set)?;
            // SAFETY: NO_PREALLOC map, value copied out immediately.
            if let Some(m) = unsafe { stash.get(v4_key(masked, level)) } {
                return Some(*m);
            }
        }
    }
    None
}

#[inline(always)]
fn find_v6(hi: u64, lo: u64, set: u32) -> Option<u64> {
    let cfg = CONFIG.get(0)?;
    let s = (set & 1) as usize;
    let (n, seed, stashed) = (cfg.v6_buckets[s], cfg.table_seed[s], cfg.stash_v6_levels[s]);
    let levels = cfg.v6_levels[s];
    let bits = cfg.filter_bits[s] as u32;
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
        if n != 0 {
            let m = c2w_probe_v6(pack(set, n, i), seed, h, l);
            if m != 0 {
                return Some(m);
            }
        }
        if stashed & (1 << i) != 0 {
            let stash = STASH_V6.get(set)?;
            // SAFETY: NO_PREALLOC map, value copied out immediately.
            if let Some(m) = unsafe { stash.get(v6_key(h, l, level)) } {
                return Some(*m);
            }
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
