//! The slot filter: a blocked Bloom filter (two bits per slot, from one hash)
//! in front of the node maps, so that most levels of most lookups skip the
//! hash probe.
//!
//! Each 64-byte block serves one IPv4 /16 (or IPv6 /32) of one rule set: every
//! slot at a level at or below that boundary sets two bits in the block of its
//! address, and its level's bit in the block's level mask (the upper half of
//! the last word). A lookup fetches the block once per side (one cache line),
//! tests only the levels the block's mask names (a /16 rarely holds more than
//! its hosts' level, so most lookups test one level, not every level the list
//! uses) and probes only the levels whose two bits are set. Levels above the
//! boundary (shorter prefixes) are rare and are always probed.
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

/// One block: 480 Bloom bits and a 32-bit level mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterBlock {
    pub words: [u64; FILTER_BLOCK_WORDS],
}

/// Bloom bits per block: the upper half of the last word is the level mask.
const BLOOM_BITS: u64 = 480;
/// The level mask: bit `i` is IPv4 level index `i` (level / V4_STRIDE), bit
/// [`V6_LEVEL_BIT`] + `i` IPv6 level index `i`.
const LEVEL_MASK_SHIFT: u32 = 32;
pub const V6_LEVEL_BIT: u32 = crate::V4_LEVELS;
const _: () = assert!(crate::V4_LEVELS + crate::V6_LEVELS <= 32);
const _: () = assert!(BLOOM_BITS <= 64 * (FILTER_BLOCK_WORDS as u64 - 1) + 32);

// A slot's bits, as the filter_bit functions pack them: two Bloom bits (9
// bits each), then its level's bit in the mask.
const SECOND_SHIFT: u32 = 9;
const LEVEL_BIT_SHIFT: u32 = 18;

impl FilterBlock {
    /// Whether the slot of `bits` (from [`filter_bit_v4`] or
    /// [`filter_bit_v6`]) may be in this block: its level's bit and both
    /// Bloom bits are set.
    #[inline(always)]
    pub fn has(&self, bits: u32) -> bool {
        self.levels() & (1 << (bits >> LEVEL_BIT_SHIFT)) != 0 && self.bloom(bits)
    }
    /// Both Bloom bits of `bits`, the level mask not consulted: the program
    /// tests only levels it took from [`Self::levels`] already.
    #[inline(always)]
    pub fn bloom(&self, bits: u32) -> bool {
        self.has_one(bits & 511) && self.has_one((bits >> SECOND_SHIFT) & 511)
    }
    /// The level mask: the levels some slot of this block is at.
    #[inline(always)]
    pub fn levels(&self) -> u32 {
        (self.words[FILTER_BLOCK_WORDS - 1] >> LEVEL_MASK_SHIFT) as u32
    }
    /// Sets both Bloom bits of `bits` and its level's bit.
    #[inline(always)]
    pub fn set(&mut self, bits: u32) {
        self.set_one(bits & 511);
        self.set_one((bits >> SECOND_SHIFT) & 511);
        self.words[FILTER_BLOCK_WORDS - 1] |=
            1u64 << (LEVEL_MASK_SHIFT + (bits >> LEVEL_BIT_SHIFT));
    }
    /// [`Self::bloom`] as 1 or 0, computed without a branch: the program
    /// gathers a side's levels with it, and a branch per level would give
    /// the verifier a path per combination of levels.
    #[inline(always)]
    pub fn bloom_bit(&self, bits: u32) -> u32 {
        let a = bits & 511;
        let b = (bits >> SECOND_SHIFT) & 511;
        let wa = self.words[(a >> 6) as usize & (FILTER_BLOCK_WORDS - 1)] >> (a & 63);
        let wb = self.words[(b >> 6) as usize & (FILTER_BLOCK_WORDS - 1)] >> (b & 63);
        (wa & wb & 1) as u32
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

/// Two Bloom bits (0..[`BLOOM_BITS`] each, packed as `a | b << 9`) from one
/// 64-bit hash: two bits per slot make a false positive, a probe for
/// nothing, about as rare as the square of one bit's (with ~10 slots per
/// block: 0.3% against 2% per level).
#[inline(always)]
fn two_bits(h: u64) -> u32 {
    let a = ((h >> 48) * BLOOM_BITS) >> 16;
    let b = (((h >> 32) & 0xffff) * BLOOM_BITS) >> 16;
    (a | (b << SECOND_SHIFT)) as u32
}

/// The bits of an IPv4 slot: `masked` is the slot address, host order.
#[inline(always)]
pub fn filter_bit_v4(level: u32, masked: u32) -> u32 {
    two_bits((((masked as u64) << 8) | level as u64).wrapping_mul(K2))
        | ((level / crate::V4_STRIDE) << LEVEL_BIT_SHIFT)
}

/// The bits of an IPv6 slot given as masked high and low halves.
#[inline(always)]
pub fn filter_bit_v6(level: u32, hi: u64, lo: u64) -> u32 {
    two_bits(hi.wrapping_mul(K2) ^ lo.wrapping_mul(K3) ^ (level as u64).wrapping_mul(K4))
        | ((V6_LEVEL_BIT + level / crate::V6_STRIDE) << LEVEL_BIT_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_sets_its_level_and_bloom_bits_and_nothing_of_the_mask_else() {
        let mut b = FilterBlock::default();
        let v4 = filter_bit_v4(32, 0x0a00_0001);
        let v6 = filter_bit_v6(48, 0x2001_0db8_0001_0000, 0);
        assert!(!b.has(v4) && !b.has(v6));
        b.set(v4);
        assert!(b.has(v4));
        assert_eq!(b.levels(), 1 << (32 / crate::V4_STRIDE));
        b.set(v6);
        assert!(b.has(v6));
        assert_eq!(
            b.levels(),
            1 << (32 / crate::V4_STRIDE) | 1 << (V6_LEVEL_BIT + 48 / crate::V6_STRIDE)
        );
        // The same Bloom bits at a level the block does not hold: no.
        let other_level = (v4 & ((1 << LEVEL_BIT_SHIFT) - 1)) | (2 << LEVEL_BIT_SHIFT);
        assert!(b.bloom(other_level) && !b.has(other_level));
        assert_eq!((b.bloom_bit(v4), b.bloom_bit(v6)), (1, 1));
        assert_eq!(
            b.bloom_bit(filter_bit_v4(32, 0x0a00_0002)),
            b.bloom(filter_bit_v4(32, 0x0a00_0002)) as u32
        );
    }

    #[test]
    fn bloom_bits_stay_below_the_level_mask() {
        let mut b = FilterBlock::default();
        for i in 0..100_000u32 {
            let x = i.wrapping_mul(2_654_435_761);
            b.set(filter_bit_v4(32, x));
            b.set(filter_bit_v6(128, x as u64, i as u64));
        }
        // Every level bit the loop set, and no Bloom bit in the mask's half.
        let expect = 1 << (32 / crate::V4_STRIDE) | 1 << (V6_LEVEL_BIT + 128 / crate::V6_STRIDE);
        assert_eq!(b.levels(), expect);
        assert_eq!(b.words[FILTER_BLOCK_WORDS - 1] as u32, u32::MAX);
    }
}
