//! Layout of the per-CPU counter array [`crate::MAP_COUNTERS`] (in pairs:
//! [`COUNTER_PAIRS`]).
//!
//! Verdict counters are indexed by (verdict, direction, family, unit); userspace
//! sums each index over CPUs at scrape time.

/// No entry matched: passed.
pub const VERDICT_PASS: u32 = 0;
/// Matched a drop entry in enforce mode: dropped.
pub const VERDICT_DROP: u32 = 1;
/// Matched a monitor entry, or a drop entry in monitor mode: passed and counted.
pub const VERDICT_WOULD_DROP: u32 = 2;
/// Matched an entry but an address was on the protected allowlist: passed.
pub const VERDICT_ALLOWLISTED: u32 = 3;
pub const VERDICTS: u32 = 4;

/// Destination matched (subscriber to C&C). Also used for [`VERDICT_PASS`].
pub const DIR_TO_CC: u32 = 0;
/// Source matched (C&C to subscriber).
pub const DIR_FROM_CC: u32 = 1;

pub const FAM_IDX_V4: u32 = 0;
pub const FAM_IDX_V6: u32 = 1;

pub const UNIT_PACKETS: u32 = 0;
pub const UNIT_BYTES: u32 = 1;

/// Index of a verdict counter.
#[inline(always)]
pub const fn verdict_counter(verdict: u32, dir: u32, fam: u32, unit: u32) -> u32 {
    ((verdict * 2 + dir) * 2 + fam) * 2 + unit
}

pub const VERDICT_COUNTERS: u32 = VERDICTS * 2 * 2 * 2;
/// Truncated or malformed headers: passed untouched.
pub const CNT_PARSE_ERROR: u32 = VERDICT_COUNTERS;
/// Not IPv4/IPv6 (ARP, LLDP, ...): passed untouched.
pub const CNT_NON_IP: u32 = VERDICT_COUNTERS + 1;
/// Passed without lookup because the global mode is off.
pub const CNT_MODE_OFF: u32 = VERDICT_COUNTERS + 2;
/// Non-first fragments (only address entries can match them).
pub const CNT_FRAGMENT: u32 = VERDICT_COUNTERS + 3;
/// Drop events written to the ring buffer. This and the next two are
/// counted per CPU in [`crate::SamplerState`], not in this array: userspace
/// reports them at these indices of interface slot 0.
pub const CNT_SAMPLED: u32 = VERDICT_COUNTERS + 4;
/// Drop events not written: the CPU's budget for this second was used up.
pub const CNT_SAMPLE_SUPPRESSED: u32 = VERDICT_COUNTERS + 5;
/// Drop events not written: the ring buffer was full (userspace behind).
pub const CNT_SAMPLE_LOST: u32 = VERDICT_COUNTERS + 6;
/// DNS responses looked at (UDP from port 53, some name listed).
pub const CNT_DNS_RESPONSES: u32 = VERDICT_COUNTERS + 7;
/// Responses for a listed name copied to the agent.
pub const CNT_DNS_FOLLOWED: u32 = VERDICT_COUNTERS + 8;
/// Responses for a listed name not copied: the ring buffer was full.
pub const CNT_DNS_LOST: u32 = VERDICT_COUNTERS + 9;
/// Responses whose question could not be walked (truncated, compressed,
/// over-long): passed, not followed.
pub const CNT_DNS_UNPARSED: u32 = VERDICT_COUNTERS + 10;
/// Counters of one interface slot (even, so every slot's verdict counters
/// start a pair; the last one is unused).
pub const COUNTER_SLOTS: u32 = VERDICT_COUNTERS + 12;
/// The whole counter array: [`COUNTER_SLOTS`] per interface slot
/// ([`crate::IFACE_SLOTS`]; slot 0 = interfaces without a slot).
pub const COUNTER_ARRAY: u32 = COUNTER_SLOTS * crate::IFACE_SLOTS;
/// The map holds the counters two to an element (`[u64; 2]`, counter `i` at
/// element `i / 2`, place `i % 2`): a verdict's packets and bytes, adjacent
/// with the packets even, are counted with one lookup, and every packet
/// counts one verdict.
pub const COUNTER_PAIRS: u32 = COUNTER_ARRAY / 2;
const _: () = assert!(
    COUNTER_SLOTS.is_multiple_of(2) && VERDICT_COUNTERS.is_multiple_of(2) && UNIT_PACKETS == 0
);
