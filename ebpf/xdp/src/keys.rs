//! Addresses masked to a level and the keys built from them, shared by the
//! filter check, the slot tables and the port map.

use c2wall_common::*;
use c2wall_xdp::parse::{v4_in_16, Addr};

/// An IPv6 address as two halves masked to `level` bits (BPF has no
/// 128-bit shifts).
#[inline(always)]
pub fn mask_v6(hi: u64, lo: u64, level: u32) -> (u64, u64) {
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
pub fn slot_addr(addr: &Addr, family: u8, level: u8) -> [u8; 16] {
    if family == FAMILY_V4 {
        v4_in_16(mask_v4(addr.v4(), level as u32).to_be_bytes())
    } else {
        let (hi, lo) = addr.halves();
        let (h, l) = mask_v6(hi, lo, level as u32);
        Addr([h.to_be(), l.to_be()]).bytes()
    }
}

#[inline(always)]
pub fn mask_v4(a: u32, level: u32) -> u32 {
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
pub fn v4_key(masked: u32, level: u32) -> V4Key {
    let word = (masked.to_be() as u64) | ((level as u64) << 32);
    // SAFETY: V4Key is 8 bytes of plain data (address, level, zero padding).
    unsafe { core::mem::transmute::<u64, V4Key>(word) }
}

/// The key of the IPv6 slot (h, l) at `level`, built as five words (see
/// [`v4_key`]).
#[inline(always)]
pub fn v6_key(h: u64, l: u64, level: u32) -> V6Key {
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
