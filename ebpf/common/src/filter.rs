//! The slot filter: a small summary per address block in front of the node
//! maps, so that most lookups skip every hash probe.
//!
//! Each 64-byte block serves one IPv4 /16 (or IPv6 /32) of one rule set, and
//! answers, for an address of that /16, which levels may hold a slot for it,
//! in a fixed number of steps whatever levels the list uses:
//! - a slot at the family's full length (an IPv4 /32, an IPv6 /128, most of
//!   any C&C list) sets two bits of the block's 256-bit Bloom filter, from one
//!   hash of its address;
//! - a shorter slot at or below the boundary (IPv4 /16-/28, IPv6 /32-/120)
//!   sets the bits of the *granules* it covers in the block's 128-bit
//!   coverage map (a granule is the next 7 address bits below the boundary:
//!   an IPv4 /23, an IPv6 /39) and its level's bit in the block's level mask.
//!
//! A lookup fetches the block once per side (one cache line): its full-length
//! level remains if both Bloom bits are set; the block's prefix levels remain
//! if the address's granule is covered. Only those levels are probed. Levels
//! above the boundary (shorter prefixes) are rare and are always probed.
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

/// One block: words 0-3 the Bloom filter, words 4-5 the coverage map, word 6
/// and the lower half of word 7 zero, the upper half of word 7 the level mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterBlock {
    pub words: [u64; FILTER_BLOCK_WORDS],
}

/// The level mask: bit `i` is IPv4 level index `i` (level / V4_STRIDE), bit
/// [`V6_LEVEL_BIT`] + `i` IPv6 level index `i`. Only prefix levels are set:
/// the full-length level is the Bloom filter's.
const LEVEL_MASK_SHIFT: u32 = 32;
pub const V6_LEVEL_BIT: u32 = crate::V4_LEVELS;
const _: () = assert!(crate::V4_LEVELS + crate::V6_LEVELS <= 32);
/// First word of the coverage map, and the address bits a granule takes.
const COVER_WORD: usize = 4;
const GRANULE_BITS: u32 = 7;
/// The full-length level's (IPv4 /32, IPv6 /128) index in each family's
/// level bits.
pub const V4_HOST_IDX: u32 = 32 / crate::V4_STRIDE;
pub const V6_HOST_IDX: u32 = 128 / crate::V6_STRIDE;

/// What one slot sets in its block (from [`filter_mark_v4`] or
/// [`filter_mark_v6`]), packed in a word: for a full-length slot its two
/// Bloom bit positions (`a | b << 8`); for a prefix slot [`PREFIX_MARK`],
/// its first granule, the log2 of the granules it covers (`<< 8`) and its
/// level's bit in the mask (`<< 16`).
const PREFIX_MARK: u32 = 1 << 31;
const SPAN_SHIFT: u32 = 8;
const LEVEL_BIT_SHIFT: u32 = 16;

impl FilterBlock {
    /// Whether every bit of `mark` is set in this block.
    #[inline(always)]
    pub fn has(&self, mark: u32) -> bool {
        let mut b = *self;
        b.set(mark);
        b == *self
    }
    /// The level mask: the prefix levels some slot of this block is at.
    #[inline(always)]
    pub fn levels(&self) -> u32 {
        (self.words[FILTER_BLOCK_WORDS - 1] >> LEVEL_MASK_SHIFT) as u32
    }
    /// Sets every bit of `mark`.
    pub fn set(&mut self, mark: u32) {
        if mark & PREFIX_MARK == 0 {
            self.set_one((mark & 255) as usize);
            self.set_one(((mark >> 8) & 255) as usize);
            return;
        }
        let first = mark & ((1 << GRANULE_BITS) - 1);
        let span = 1u32 << ((mark >> SPAN_SHIFT) & 7);
        for g in first..(first + span).min(1 << GRANULE_BITS) {
            self.words[COVER_WORD + (g >> 6) as usize] |= 1u64 << (g & 63);
        }
        let level_bit = (mark >> LEVEL_BIT_SHIFT) & 31;
        self.words[FILTER_BLOCK_WORDS - 1] |= 1u64 << (LEVEL_MASK_SHIFT + level_bit);
    }
    /// The IPv4 levels at or below [`V4_FILTER_MIN_LEVEL`] that may hold a
    /// slot for `addr` (host order), as level-index bits. Without a branch:
    /// the program computes it on every packet, and a branch would give the
    /// verifier a path per outcome.
    #[inline(always)]
    pub fn candidates_v4(&self, addr: u32) -> u32 {
        let prefixes = self.levels() & ((1 << crate::V4_LEVELS) - 1);
        let g = (addr >> (32 - V4_FILTER_MIN_LEVEL - GRANULE_BITS)) & ((1 << GRANULE_BITS) - 1);
        (prefixes & self.covered(g)) | (self.bloom(host_hash_v4(addr)) << V4_HOST_IDX)
    }
    /// The IPv4 levels that may hold a slot for `addr`: the ones the
    /// filter does not cover (below [`V4_FILTER_MIN_LEVEL`]) and its
    /// [`Self::candidates_v4`]. What the kernel and the agent's replay probe.
    #[inline(always)]
    pub fn possible_v4(&self, addr: u32) -> u32 {
        const UNFILTERED: u32 = (1 << (V4_FILTER_MIN_LEVEL / crate::V4_STRIDE)) - 1;
        UNFILTERED | self.candidates_v4(addr)
    }
    /// [`Self::possible_v4`] for IPv6 address (hi, lo).
    #[inline(always)]
    pub fn possible_v6(&self, hi: u64, lo: u64) -> u32 {
        const UNFILTERED: u32 = (1 << (V6_FILTER_MIN_LEVEL / crate::V6_STRIDE)) - 1;
        UNFILTERED | self.candidates_v6(hi, lo)
    }
    /// [`Self::candidates_v4`] for IPv6 address (hi, lo), as IPv6 level-index
    /// bits.
    #[inline(always)]
    pub fn candidates_v6(&self, hi: u64, lo: u64) -> u32 {
        let prefixes = self.levels() >> V6_LEVEL_BIT;
        let g =
            (hi >> (64 - V6_FILTER_MIN_LEVEL - GRANULE_BITS)) as u32 & ((1 << GRANULE_BITS) - 1);
        (prefixes & self.covered(g)) | (self.bloom(host_hash_v6(hi, lo)) << V6_HOST_IDX)
    }
    /// All ones if granule `g` is covered, else 0.
    #[inline(always)]
    fn covered(&self, g: u32) -> u32 {
        let w = self.words[COVER_WORD + ((g >> 6) & 1) as usize] >> (g & 63);
        ((w & 1) as u32).wrapping_neg()
    }
    /// 1 if both Bloom bits of hash `h` are set, else 0.
    #[inline(always)]
    fn bloom(&self, h: u64) -> u32 {
        let (a, b) = bloom_bits(h);
        let wa = self.words[(a >> 6) & 3] >> (a & 63);
        let wb = self.words[(b >> 6) & 3] >> (b & 63);
        (wa & wb & 1) as u32
    }
    #[inline(always)]
    fn set_one(&mut self, bit: usize) {
        self.words[(bit >> 6) & 3] |= 1u64 << (bit & 63);
    }
}

/// The two Bloom bit positions (0..256) of a full-length slot's hash: its
/// top two bytes. A block holds about eight slots (the agent's
/// `sizing::filter_bits`), so about 16 of its 256 bits are set, and both
/// bits of an address that is none of them about once in 256 lookups.
#[inline(always)]
fn bloom_bits(h: u64) -> (usize, usize) {
    ((h >> 56) as usize, (h >> 48) as usize & 255)
}

#[inline(always)]
fn host_hash_v4(addr: u32) -> u64 {
    (addr as u64 | (4u64 << 32)).wrapping_mul(K2)
}

#[inline(always)]
fn host_hash_v6(hi: u64, lo: u64) -> u64 {
    hi.wrapping_mul(K2) ^ lo.wrapping_mul(K3)
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

/// A prefix slot's mark: its level's bit `level_bit` in the mask, and the
/// granules it covers from `first` (its own): one if `level` is at least the
/// boundary `min` plus the granule bits, else 2^(that sum - `level`).
fn prefix_mark(level: u32, min: u32, first: u32, level_bit: u32) -> u32 {
    let span_log = (min + GRANULE_BITS).saturating_sub(level);
    PREFIX_MARK | first | (span_log << SPAN_SHIFT) | (level_bit << LEVEL_BIT_SHIFT)
}

/// What an IPv4 slot at `level` (>= [`V4_FILTER_MIN_LEVEL`]) sets in its
/// block: `masked` is the slot address, host order.
pub fn filter_mark_v4(level: u32, masked: u32) -> u32 {
    if level == 32 {
        let (a, b) = bloom_bits(host_hash_v4(masked));
        return (a | b << 8) as u32;
    }
    let g = (masked >> (32 - V4_FILTER_MIN_LEVEL - GRANULE_BITS)) & ((1 << GRANULE_BITS) - 1);
    prefix_mark(level, V4_FILTER_MIN_LEVEL, g, level / crate::V4_STRIDE)
}

/// What an IPv6 slot at `level` (>= [`V6_FILTER_MIN_LEVEL`]) sets in its
/// block: (hi, lo) are its masked halves.
pub fn filter_mark_v6(level: u32, hi: u64, lo: u64) -> u32 {
    if level == 128 {
        let (a, b) = bloom_bits(host_hash_v6(hi, lo));
        return (a | b << 8) as u32;
    }
    let g = (hi >> (64 - V6_FILTER_MIN_LEVEL - GRANULE_BITS)) as u32 & ((1 << GRANULE_BITS) - 1);
    prefix_mark(
        level,
        V6_FILTER_MIN_LEVEL,
        g,
        V6_LEVEL_BIT + level / crate::V6_STRIDE,
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn block_of(marks: &[u32]) -> FilterBlock {
        let mut b = FilterBlock::default();
        for &m in marks {
            b.set(m);
            assert!(b.has(m));
        }
        b
    }

    const V4_16: u32 = 1 << (16 / crate::V4_STRIDE);
    const V4_24: u32 = 1 << (24 / crate::V4_STRIDE);
    const V4_32: u32 = 1 << V4_HOST_IDX;

    #[test]
    fn an_ipv4_host_remains_only_for_itself_and_a_prefix_only_for_its_granules() {
        let host = 0x0a00_0001;
        let b = block_of(&[filter_mark_v4(32, host), filter_mark_v4(24, 0x0a00_8000)]);
        assert_eq!(b.levels(), V4_24, "the prefix's level only");
        assert_eq!(b.candidates_v4(host), V4_32);
        // 10.0.128.0/24 is granule 64 (10.0.128.0/23): both of its /24s.
        assert_eq!(b.candidates_v4(0x0a00_8005), V4_24);
        assert_eq!(b.candidates_v4(0x0a00_81ff), V4_24);
        assert_eq!(b.candidates_v4(0x0a00_8200), 0);
        assert_eq!(b.candidates_v4(0x0a00_7fff), 0);
        // Nothing above the Bloom's rate for other hosts of the /16.
        let false_hits = (0..65_536u32)
            .filter(|i| b.candidates_v4(0x0a00_0000 | i) & V4_32 != 0)
            .count();
        assert!(false_hits < 65_536 / 100, "{false_hits}");
    }

    #[test]
    fn a_sixteen_covers_its_whole_block_and_words_beyond_the_map_stay_clear() {
        let b = block_of(&[filter_mark_v4(16, 0x0a01_0000)]);
        assert_eq!(b.words[COVER_WORD], u64::MAX);
        assert_eq!(b.words[COVER_WORD + 1], u64::MAX);
        assert_eq!(b.candidates_v4(0x0a01_ffff), V4_16);
        assert_eq!(&b.words[..COVER_WORD], &[0; COVER_WORD]);
        assert_eq!(b.words[6], 0);
        assert_eq!(b.words[7] as u32, 0);
    }

    #[test]
    fn ipv6_hosts_and_prefixes_use_their_own_level_bits() {
        let (hi, lo) = (0x2001_0db8_0001_0000, 0x1);
        let b = block_of(&[
            filter_mark_v6(128, hi, lo),
            filter_mark_v6(48, 0x2001_0db8_0200_0000, 0),
        ]);
        assert_eq!(b.levels(), 1 << (V6_LEVEL_BIT + 48 / crate::V6_STRIDE));
        assert_eq!(b.candidates_v6(hi, lo), 1 << V6_HOST_IDX);
        assert_eq!(
            b.candidates_v6(0x2001_0db8_02ff_ffff, 7),
            1 << (48 / crate::V6_STRIDE)
        );
        // Another /39 of the /32: neither.
        assert_eq!(b.candidates_v6(0x2001_0db8_0400_0000, 0), 0);
        // IPv4 reads no IPv6 level from the same mask.
        assert_eq!(b.candidates_v4(0) & !V4_32, 0);
    }

    #[test]
    fn every_mark_is_found_again_however_full_the_block() {
        let mut b = FilterBlock::default();
        let mut marks = Vec::new();
        for i in 0..2_000u32 {
            let x = i.wrapping_mul(2_654_435_761);
            let level = [16, 20, 24, 28, 32][i as usize % 5];
            let m4 = x & (u32::MAX << (32 - level));
            marks.push((filter_mark_v4(level, m4), Some((level, x)), None));
            let (hi, lo) = (x as u64 | (0x2001 << 48), i as u64);
            marks.push((filter_mark_v6(128, hi, lo), None, Some((128, hi, lo))));
        }
        for (m, _, _) in &marks {
            b.set(*m);
        }
        for (m, v4, v6) in &marks {
            assert!(b.has(*m));
            if let Some((level, x)) = v4 {
                let idx = level / crate::V4_STRIDE;
                assert!(b.candidates_v4(*x) & (1 << idx) != 0, "{x:#x}/{level}");
            }
            if let Some((_, hi, lo)) = v6 {
                assert!(b.candidates_v6(*hi, *lo) & (1 << V6_HOST_IDX) != 0);
            }
        }
    }
}
