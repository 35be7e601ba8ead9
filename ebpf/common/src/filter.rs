//! The slot filter: a blocked Bloom filter (two bits per slot, from one hash)
//! in front of the node maps, so that most levels of most lookups skip the
//! hash probe.
//!
//! Each 64-byte block serves one IPv4 /16 (or IPv6 /32) of one rule set: every
//! slot at a level at or below that boundary sets two bits in the block of its
//! address. A lookup fetches the block once per side (one cache line) and then
//! probes only the levels whose bit is set. Levels above the boundary (shorter
//! prefixes) are rare and are always probed.
//!
//! Bits are only ever added in place, never cleared, so the filter has no false
//! negatives; a reload rebuilds it exactly. These functions are the single
//! definition used by the kernel and by userspace.
//!
//! Each rule set has its own filter map of `1 << bits` blocks, sized by
//! userspace to the set's slots ([`crate::Config::filter_bits`]), so a short
//! list holds a few KiB, not the 8 MiB a million entries want.

/// Fewest and most index bits of a set's filter (64 blocks = 4 KiB to
/// 131,072 blocks = 8 MiB).
pub const FILTER_MIN_BITS: u8 = 6;
pub const FILTER_MAX_BITS: u8 = 17;
pub const FILTER_BLOCK_WORDS: usize = 8;
/// IPv4 levels >= this are filtered (the block is chosen by the /16).
pub const V4_FILTER_MIN_LEVEL: u32 = 16;
/// IPv6 levels >= this are filtered (the block is chosen by the /32).
pub const V6_FILTER_MIN_LEVEL: u32 = 32;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
const K3: u64 = 0x1656_67b1_9e37_79f9;
const K4: u64 = 0x85eb_ca77_c2b2_ae63;

/// One block: 512 bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterBlock {
    pub words: [u64; FILTER_BLOCK_WORDS],
}

impl FilterBlock {
    /// Whether both bits of `bits` (from [`filter_bit_v4`] or
    /// [`filter_bit_v6`]) are set.
    #[inline(always)]
    pub fn has(&self, bits: u32) -> bool {
        self.has_one(bits & 511) && self.has_one(bits >> 16)
    }
    /// Sets both bits of `bits`.
    #[inline(always)]
    pub fn set(&mut self, bits: u32) {
        self.set_one(bits & 511);
        self.set_one(bits >> 16);
    }
    #[inline(always)]
    fn has_one(&self, bit: u32) -> bool {
        self.words[(bit >> 6) as usize & (FILTER_BLOCK_WORDS - 1)] & (1u64 << (bit & 63)) != 0
    }
    #[inline(always)]
    fn set_one(&mut self, bit: u32) {
        self.words[(bit >> 6) as usize & (FILTER_BLOCK_WORDS - 1)] |= 1u64 << (bit & 63);
    }
}

#[inline(always)]
fn block_index(bits: u32, x: u64) -> u32 {
    (x.wrapping_mul(K1) >> ((64 - bits) & 63)) as u32
}

/// Block of an IPv4 address (host byte order) in a filter of `1 << bits` blocks.
#[inline(always)]
pub fn filter_block_v4(bits: u32, addr: u32) -> u32 {
    block_index(bits, (addr >> 16) as u64 | (4u64 << 32))
}

/// Block of an IPv6 address given as its high 64 bits (host byte order).
#[inline(always)]
pub fn filter_block_v6(bits: u32, hi: u64) -> u32 {
    block_index(bits, (hi >> 32) | (6u64 << 32))
}

/// Two bits (0..512 each, packed as `a | b << 16`) from one 64-bit hash:
/// two bits per slot make a false positive, a probe for nothing, about as
/// rare as the square of one bit's (with ~10 slots per block: 0.3% against
/// 2% per level).
#[inline(always)]
fn two_bits(h: u64) -> u32 {
    ((h >> 55) as u32) | ((((h >> 46) & 511) as u32) << 16)
}

/// The bits of an IPv4 slot: `masked` is the slot address, host order.
#[inline(always)]
pub fn filter_bit_v4(level: u32, masked: u32) -> u32 {
    two_bits((((masked as u64) << 8) | level as u64).wrapping_mul(K2))
}

/// The bits of an IPv6 slot given as masked high and low halves.
#[inline(always)]
pub fn filter_bit_v6(level: u32, hi: u64, lo: u64) -> u32 {
    two_bits(hi.wrapping_mul(K2) ^ lo.wrapping_mul(K3) ^ (level as u64).wrapping_mul(K4))
}
