//! The slot tables: each rule set's IPv4 and IPv6 slots in an open-addressed
//! table held in a plain array map, one 64-byte (IPv4) or 128-byte (IPv6)
//! bucket per element, written by userspace through a memory mapping.
//!
//! Why not the kernel's hash map: its elements carry 48 bytes of header each
//! and its bucket array is a power of two, so a million slots held about
//! 200 MiB; here a slot is 12 (IPv4) or 24 (IPv6) bytes at about 85% load.
//!
//! Each slot has two buckets ([`buckets`]): the program looks in the first,
//! then the second. Userspace places every slot of a reload with cuckoo
//! moves in a table nobody reads yet. In place (a delta) it only fills an
//! empty entry of one of the slot's buckets, or revives the slot's own dead
//! entry; a slot that finds neither goes to the set's stash (a small kernel
//! hash map, probed only at levels the stash holds) until the next reload.
//!
//! Entries are never reused for another slot while the table is in use, so
//! a packet that reads an entry while userspace writes it sees either the
//! old or the new state of that one slot, never another slot's value:
//! - an entry goes empty -> live(slot) <-> dead(slot); the address words
//!   are written only while it is empty, before its meta word goes live;
//! - everything that changes later (value, live or dead) is the one 64-bit
//!   meta word, written in one store;
//! - the program reads the meta word first, then the address. Stores and
//!   loads are not reordered with each other on x86-64 (TSO), the platform
//!   this is built for; the program's loads are volatile so the compiler
//!   keeps their order too.

/// Entries per bucket (both families).
pub const BUCKET_ENTRIES: usize = 5;

/// One IPv4 bucket: one cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Bucket {
    pub _pad: u32,
    /// Entry addresses, masked to the entry's level, native byte order (the
    /// value of the big-endian address).
    pub addr: [u32; BUCKET_ENTRIES],
    /// Entry meta words ([`meta`]).
    pub meta: [u64; BUCKET_ENTRIES],
}

/// One IPv6 bucket: two cache lines, the meta words in the first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Bucket {
    pub meta: [u64; BUCKET_ENTRIES],
    pub _pad: u64,
    /// Entry addresses as (high, low) halves, masked, native byte order.
    pub addr: [[u64; 2]; BUCKET_ENTRIES],
}

// Meta word layout, low bits first:
// - 0..26: the destination (towards C&C) side, [`Side`]
// - 26..52: the source (from C&C) side
// - 52: [`META_PORTS`]
// - 56..61: level index + 1 (0: empty entry)
// - 61: [`META_DEAD`]
const SIDE_BITS: u32 = 26;
const SIDE_MASK: u64 = (1 << SIDE_BITS) - 1;
/// Counter slots a side can name (24 bits).
pub const SIDE_COUNTER_LIMIT: u32 = 1 << 24;
/// Port-scoped rules exist under this slot (see [`crate::NODE_HAS_PORTS`]).
pub const META_PORTS: u64 = 1 << 52;
const LEVEL_SHIFT: u32 = 56;
/// The slot was removed; its entry stays its own until the next reload.
pub const META_DEAD: u64 = 1 << 61;
/// The bits a lookup compares: level and dead.
pub const META_KEY_MASK: u64 = 0x3f << LEVEL_SHIFT;

/// The meta word of a live entry at level index `level_idx` (level /
/// stride) with `to` and `from` sides ([`side`]).
#[inline(always)]
pub const fn meta(level_idx: u32, to: u32, from: u32, ports: bool) -> u64 {
    (to as u64 & SIDE_MASK)
        | ((from as u64 & SIDE_MASK) << SIDE_BITS)
        | if ports { META_PORTS } else { 0 }
        | meta_key(level_idx)
}

/// What a live entry at level index `level_idx` holds in [`META_KEY_MASK`].
#[inline(always)]
pub const fn meta_key(level_idx: u32) -> u64 {
    ((level_idx as u64 + 1) & 0x1f) << LEVEL_SHIFT
}

/// The level index of an entry's meta word (None: empty).
#[inline(always)]
pub const fn meta_level(m: u64) -> Option<u32> {
    match ((m >> LEVEL_SHIFT) & 0x1f) as u32 {
        0 => None,
        l => Some(l - 1),
    }
}

/// One side of a meta word: action (2 bits) over a counter slot (24 bits).
#[inline(always)]
pub const fn side(action: u8, counter: u32) -> u32 {
    ((action as u32 & 3) << 24) | (counter & (SIDE_COUNTER_LIMIT - 1))
}

/// The destination side's (action, counter slot).
#[inline(always)]
pub const fn meta_to(m: u64) -> (u8, u32) {
    unside((m & SIDE_MASK) as u32)
}

/// The source side's (action, counter slot).
#[inline(always)]
pub const fn meta_from(m: u64) -> (u8, u32) {
    unside(((m >> SIDE_BITS) & SIDE_MASK) as u32)
}

#[inline(always)]
const fn unside(s: u32) -> (u8, u32) {
    ((s >> 24) as u8 & 3, s & (SIDE_COUNTER_LIMIT - 1))
}

const M1: u64 = 0xbf58_476d_1ce4_e5b9;
const M2: u64 = 0x94d0_49bb_1331_11eb;
const M3: u64 = 0x9e37_79b9_7f4a_7c15;

/// A slot's two buckets in a table of `n` buckets (n > 0), from its hash.
#[inline(always)]
pub fn buckets(h: u64, n: u32) -> (u32, u32) {
    let first = (((h & 0xffff_ffff) * n as u64) >> 32) as u32;
    let second = (((h >> 32) * n as u64) >> 32) as u32;
    (first, second)
}

#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(M1);
    x ^= x >> 27;
    x = x.wrapping_mul(M2);
    x ^ (x >> 31)
}

/// Hash of the IPv4 slot `addr` (masked, native order) at `level_idx`,
/// keyed by the set's `seed` (random per reload, so no list can be built to
/// collide).
#[inline(always)]
pub fn hash_v4(seed: u64, addr: u32, level_idx: u32) -> u64 {
    mix(seed ^ (addr as u64 | ((level_idx as u64) << 32)))
}

/// Hash of the IPv6 slot (high, low) at `level_idx` (see [`hash_v4`]).
#[inline(always)]
pub fn hash_v6(seed: u64, hi: u64, lo: u64, level_idx: u32) -> u64 {
    mix(seed ^ hi ^ lo.wrapping_mul(M3) ^ ((level_idx as u64) << 59))
}

// Hit array layout (u64 elements, see MAP_HITS): element 0 holds S, the
// counter slots per CPU (a power of two, at least 1024); then S / 2
// elements of entry ids, two per element (slot s in the low half of element
// 1 + s / 2 when s is even); then one block of S counters per CPU.

/// The element that holds counter slot `slot`'s entry id, and its shift.
#[inline(always)]
pub const fn hit_id_index(slot: u32) -> (u64, u32) {
    (1 + (slot / 2) as u64, (slot & 1) * 32)
}

/// The element of counter slot `slot` on CPU `cpu` in an array of `slots`
/// slots per CPU.
#[inline(always)]
pub const fn hit_counter_index(slots: u64, cpu: u64, slot: u32) -> u64 {
    1 + slots / 2 + cpu * slots + slot as u64
}

/// Elements of a hit array with `slots` slots per CPU on `cpus` CPUs.
pub const fn hit_elements(slots: u64, cpus: u64) -> u64 {
    1 + slots / 2 + cpus * slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_words_round_trip() {
        let m = meta(8, side(2, 77), side(1, SIDE_COUNTER_LIMIT - 1), true);
        assert_eq!(meta_level(m), Some(8));
        assert_eq!(meta_to(m), (2, 77));
        assert_eq!(meta_from(m), (1, SIDE_COUNTER_LIMIT - 1));
        assert!(m & META_PORTS != 0);
        assert_eq!(m & META_KEY_MASK, meta_key(8));
        assert_ne!((m | META_DEAD) & META_KEY_MASK, meta_key(8));
        assert_eq!(meta_level(0), None);
        assert_eq!(meta_level(meta(16, 0, 0, false)), Some(16));
    }

    #[test]
    fn buckets_stay_in_range() {
        for n in [1u32, 2, 3, 1000, 228_000] {
            for a in 0..1000u32 {
                let (x, y) = buckets(hash_v4(7, a << 8, 6), n);
                assert!(x < n && y < n);
            }
        }
    }
}
