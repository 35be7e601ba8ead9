//! The slot tables' probes (layout: c2wall_common::table). The lookup and
//! the per-level probe are global functions: the verifier checks each once,
//! on its own, instead of on every path that reaches it.

use c2wall_common::*;

use crate::keys::{mask_v4, mask_v6, v4_key, v6_key};
use crate::maps::{NodesV4, NodesV6, CONFIG, NODES_V4, NODES_V6, STASH_V4, STASH_V6};

/// The live meta word of IPv4 slot (`masked`, `want`) in bucket `b`, or 0.
///
/// Entry by entry, stopping at the match: the meta word first, the address
/// only under a meta word of the wanted level. Each entry keeps two values
/// live, so the scan needs no spills to the stack; reading all the bucket's
/// words up front and combining them without branches took about twice the
/// instructions (c2wall-bench, hit cells).
#[inline(always)]
fn scan_v4(table: &NodesV4, b: u32, masked: u32, want: u64) -> u64 {
    let Some(bucket) = table.get(b) else {
        return 0;
    };
    for e in 0..BUCKET_ENTRIES {
        // Meta word first, then the address (see table.rs).
        // SAFETY: in-bounds reads of the bucket the map returned.
        let m = unsafe { core::ptr::read_volatile(&bucket.meta[e]) };
        if m & META_KEY_MASK == want {
            let a = unsafe { core::ptr::read_volatile(&bucket.addr[e]) };
            if a == masked {
                return m;
            }
        }
    }
    0
}

/// [`scan_v4`] for an IPv6 bucket.
#[inline(always)]
fn scan_v6(table: &NodesV6, b: u32, h: u64, l: u64, want: u64) -> u64 {
    let Some(bucket) = table.get(b) else {
        return 0;
    };
    for e in 0..BUCKET_ENTRIES {
        // SAFETY: as in scan_v4.
        let m = unsafe { core::ptr::read_volatile(&bucket.meta[e]) };
        if m & META_KEY_MASK == want {
            let ah = unsafe { core::ptr::read_volatile(&bucket.addr[e][0]) };
            let al = unsafe { core::ptr::read_volatile(&bucket.addr[e][1]) };
            if ah == h && al == l {
                return m;
            }
        }
    }
    0
}

/// The meta word of the most specific live slot that holds IPv4 address
/// `a` (native order) in rule set `set`, or 0: longest level first, of the
/// levels in `possible` (see lookup::possible).
///
/// A global function: the verifier checks it once, on its own, with its
/// arguments and result as unknown numbers. Inlined (or a static call), it
/// was checked anew on every path that leads to a lookup, and the program
/// went past the verifier's budget of a million instructions.
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_find_v4(set: u64, a: u64, possible: u64) -> u64 {
    find_v4(a as u32, set as u32, possible as u32).unwrap_or(0)
}

/// [`c2w_find_v4`] for IPv6 address (hi, lo).
#[no_mangle]
#[inline(never)]
pub extern "C" fn c2w_find_v6(set: u64, hi: u64, lo: u64, possible: u64) -> u64 {
    find_v6(hi, lo, set as u32, possible as u32).unwrap_or(0)
}

/// Set, bucket count and level index in one argument: a BPF call takes at
/// most five.
#[inline(always)]
pub fn pack(set: u32, n: u32, idx: u32) -> u64 {
    (set & 1) as u64 | ((idx as u64) << 8) | ((n as u64) << 32)
}

/// One level's probe of the IPv4 table: the meta word of slot (`masked`,
/// level index) if live in its first bucket, then its second, else 0.
/// Global for the same reason as [`c2w_find_v4`]: checked once, not once
/// per path through the level loop.
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
fn find_v4(a: u32, set: u32, possible: u32) -> Option<u64> {
    let cfg = CONFIG.get(0)?;
    let s = (set & 1) as usize;
    let (n, seed, stashed) = (cfg.v4_buckets[s], cfg.table_seed[s], cfg.stash_v4_levels[s]);
    let mut i = V4_LEVELS;
    while i > 0 {
        i -= 1;
        if possible & (1 << i) == 0 {
            continue;
        }
        let level = i * V4_STRIDE;
        let masked = mask_v4(a, level);
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
fn find_v6(hi: u64, lo: u64, set: u32, possible: u32) -> Option<u64> {
    let cfg = CONFIG.get(0)?;
    let s = (set & 1) as usize;
    let (n, seed, stashed) = (cfg.v6_buckets[s], cfg.table_seed[s], cfg.stash_v6_levels[s]);
    let mut i = V6_LEVELS;
    while i > 0 {
        i -= 1;
        if possible & (1 << i) == 0 {
            continue;
        }
        let level = i * V6_STRIDE;
        let (h, l) = mask_v6(hi, lo, level);
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
