//! Following DNS answers for listed names (the edge side of domain entries).
//!
//! The program recognises UDP responses from port 53, walks the question
//! name (bounded: at most [`DNS_NAME_BYTES`] bytes, no compression pointer,
//! which a question never needs) and probes [`crate::MAP_DNS_NAMES`] with the
//! key of the whole name and of each parent (up to [`DNS_SUFFIX_LABELS`]
//! labels from the right). Only when one is listed does it copy the message
//! to userspace through [`crate::MAP_DNS_ANSWERS`]; the agent parses the
//! records, checks the name against its own table (a key is a hash, so a
//! collision costs a copy, never an entry) and adds the answered addresses.
//!
//! The key functions below are the one definition both sides use: the
//! program over wire-format labels, the agent over the names it lists.

/// [`crate::MAP_DNS_NAMES`] value bit: the name itself is listed.
pub const DNS_NAME_EXACT: u32 = 1;
/// [`crate::MAP_DNS_NAMES`] value bit: the name and everything below it.
pub const DNS_NAME_SUBTREE: u32 = 2;

/// [`crate::Config::follow`]: DNS responses are looked at (some name is listed).
pub const FOLLOW_DNS: u8 = 1;

/// Longest question name walked (wire format, the 255-byte limit of RFC 1035
/// plus its root label).
pub const DNS_NAME_BYTES: u32 = 256;
/// Labels walked in a question name: a deeper name is not followed (counted
/// as unparsed; the resolvers' RPZ still refuses it). The verifier's budget
/// sets it: each label is one more state for it to check.
pub const DNS_MAX_LABELS: u32 = 20;
/// Labels from the right whose suffixes are keyed: a name deeper than this
/// is matched only through a listed parent within this depth.
pub const DNS_SUFFIX_LABELS: u32 = 16;
/// Bytes of a DNS message handed to userspace: more than a UDP answer in an
/// Ethernet frame can hold, and a power of two, so the program bounds a
/// copy's length with a mask the verifier of every kernel follows.
pub const DNS_COPY_BYTES: usize = 2048;
/// Size of the answer ring buffer: about 120 answers waiting for the agent,
/// which reads them as they come (a full ring counts as lost).
pub const DNS_ANSWERS_BYTES: u32 = 256 * 1024;
/// Upper limit of listed names in the kernel's name map. A hash without
/// prealloc holds only the names listed, but the kernel allocates its
/// buckets for this many up front (16 bytes each: 2 MiB), so it is sized
/// for a national feed's names, not for millions.
pub const DNS_NAMES_CAPACITY: u32 = 128 * 1024;

/// One DNS response for a listed name, copied for the agent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsAnswer {
    /// `bpf_ktime_get_coarse_ns()` when the response passed.
    pub ts_ns: u64,
    pub ifindex: u32,
    /// Bytes of `message` copied (the DNS message may be longer:
    /// `wire_len`).
    pub len: u16,
    /// Length of the DNS message in the packet (UDP payload).
    pub wire_len: u16,
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`].
    pub family: u8,
    pub _pad: [u8; 7],
    /// The response's source (the resolver) and destination (the
    /// subscriber), network byte order, IPv4 in the first four bytes.
    pub resolver: [u8; 16],
    pub subscriber: [u8; 16],
    /// The DNS message from its header on.
    pub message: [u8; DNS_COPY_BYTES],
}

/// Words (u64) of [`crate::MAP_DNS_FILTER`]: one bit per key, set for
/// every listed key, so an unlisted name's probes mostly end at a bit that
/// is clear (an array read) instead of a hash lookup. 2^20 bits (128 KiB):
/// at 100,000 names about one probe in ten still reaches the hash.
pub const DNS_FILTER_WORDS: u32 = 1 << 14;

/// The filter word and bit of a name key (its top 20 bits: the key's
/// final multiply mixes into them best).
#[inline(always)]
pub fn filter_bit(key: u64) -> (u32, u64) {
    let bit = (key >> 44) as u32;
    (bit >> 6, 1u64 << (bit & 63))
}

/// Seed of a label's hash (FNV-1a offset basis).
pub const LABEL_SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// Key of the empty name, the start of [`suffix_step`].
pub const NAME_SEED: u64 = 0x6332_7761_6c6c_2e64;

/// A label (at most 63 bytes) is hashed as little-endian words of 8 bytes,
/// the last one masked to the label's end: at most this many.
pub const LABEL_WORDS: u32 = 8;

/// The bytes of word `w` of a label of `len` bytes that belong to it.
#[inline(always)]
pub fn word_mask(len: u32, w: u32) -> u64 {
    let start = w * 8;
    if len >= start + 8 {
        !0
    } else if len > start {
        (1u64 << ((len - start) * 8)) - 1
    } else {
        0
    }
}

/// One word of a label into its hash: the word's label bytes with bit 5
/// set, which folds ASCII case (DNS names compare without case). It also
/// merges a few non-letter pairs (`_` and DEL, `@` and a backtick): only a
/// key collision, which the agent's own check of the name resolves.
#[inline(always)]
pub fn label_step(h: u64, word: u64, mask: u64) -> u64 {
    let w = (word | 0x2020_2020_2020_2020) & mask;
    let h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    h ^ (h >> 29)
}

/// A label's hash, as the program computes it from the packet: one step
/// per word that holds some of its bytes.
pub fn label_hash(label: &[u8]) -> u64 {
    let len = label.len() as u32;
    (0..LABEL_WORDS)
        .take_while(|w| w * 8 < len)
        .fold(LABEL_SEED, |h, w| {
            let mut word = [0u8; 8];
            for (i, b) in label.iter().skip(w as usize * 8).take(8).enumerate() {
                word[i] = *b;
            }
            label_step(h, u64::from_le_bytes(word), word_mask(len, w))
        })
}

/// Prepends a label (its hash) to a name's key: a name's key is built from
/// its rightmost label leftwards, so every parent's key is a step on the way.
#[inline(always)]
pub fn suffix_step(key: u64, label: u64) -> u64 {
    (key.rotate_left(23) ^ label).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The key of a name given as dot-separated labels (no trailing dot),
/// as the agent writes it into [`crate::MAP_DNS_NAMES`].
pub fn name_key(name: &str) -> u64 {
    name.rsplit('.').fold(NAME_SEED, |k, label| {
        suffix_step(k, label_hash(label.as_bytes()))
    })
}

/// The one element of [`crate::MAP_DNS_SCRATCH`] (per CPU): what the
/// verdict hands to the name walk, the walk's label hashes and the question
/// name copied out of the packet.
///
/// The verdict writes the frame's addresses here and the program follows
/// the response after the verdict is taken: read back from a map they are
/// values the verifier knows nothing about, the same whichever header path
/// led to them, so it checks the walk a few times instead of once per way
/// of parsing the headers (which exceeds its budget). The label hashes and
/// the name live here too, off the 512-byte stack.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsScratch {
    /// Addresses of the frame's start and end.
    pub start: u64,
    pub end: u64,
    /// The transport header's offset from the start.
    pub l4: u32,
    /// The interface's first counter ([`crate::COUNTER_SLOTS`] apart).
    pub base: u32,
    /// A copy's length on its way to the helper (see the program).
    pub copy_len: u32,
    pub family: u8,
    pub _pad: [u8; 3],
    /// The response's source and destination.
    pub resolver: [u8; 16],
    pub subscriber: [u8; 16],
    /// Each label's hash, from the left.
    pub labels: [u64; DNS_MAX_LABELS as usize],
    /// The name as copied (DNS_NAME_BYTES), then room for a word read
    /// from any offset in it.
    pub bytes: [u8; DNS_NAME_BYTES as usize + 64],
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn keys_fold_case_and_differ_by_label_split() {
        assert_eq!(name_key("Evil.Example"), name_key("evil.example"));
        assert_ne!(name_key("ab.c"), name_key("a.bc"));
        assert_ne!(name_key("evil.example"), name_key("example"));
        // Labels longer than one word, and differing only past it.
        let long = "a".repeat(63);
        let other = format!("{}b", "a".repeat(62));
        assert_ne!(label_hash(long.as_bytes()), label_hash(other.as_bytes()));
        assert_eq!(word_mask(3, 0), 0xff_ffff);
        assert_eq!(word_mask(8, 1), 0);
        assert_eq!(word_mask(9, 1), 0xff);
    }
}
