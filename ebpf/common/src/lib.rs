//! Kernel ABI of c2wall: everything the XDP program and userspace must agree on.
//!
//! Every struct here is `#[repr(C)]` with explicit padding so that its layout is
//! identical on both sides and padding bytes are always written as zero (the kernel
//! hashes whole keys, so stray padding would make equal keys differ).
//! Any change to a layout or a constant must bump [`ABI_VERSION`]: userspace pins
//! maps under a directory named after it, so an upgraded agent never reuses maps
//! of an incompatible layout.
#![no_std]

mod counters;
mod dns;
mod events;
mod filter;
mod keys;
mod table;

pub use counters::*;
pub use dns::*;
pub use events::*;
pub use filter::*;
pub use keys::*;
pub use table::*;

/// Layout version of every map below. Part of the pinned-maps directory name.
pub const ABI_VERSION: u32 = 10;

// Map names: must match the statics in ebpf/xdp/src/maps.rs.
//
// The per-set rule maps (nodes, ports, filter) and the hit counters are
// arrays of maps: the outer map, pinned and referenced by the program, holds
// one inner map per rule set (index = set), which userspace creates sized to
// what it will hold and swaps in whole. That is how memory follows the list
// and how a map grows or shrinks with no enforcement gap.
pub const MAP_CONFIG: &str = "C2W_CONFIG";
pub const MAP_NODES_V4: &str = "C2W_NODES_V4";
pub const MAP_NODES_V6: &str = "C2W_NODES_V6";
/// Per set: the slots an in-place change could not place in the table (see
/// table.rs), [`V4Key`] -> meta word; probed only at [`Config::stash_v4_levels`].
pub const MAP_STASH_V4: &str = "C2W_STASH_V4";
pub const MAP_STASH_V6: &str = "C2W_STASH_V6";
pub const MAP_PORTS: &str = "C2W_PORTS";
pub const MAP_ALLOW_V4: &str = "C2W_ALLOW_V4";
pub const MAP_ALLOW_V6: &str = "C2W_ALLOW_V6";
pub const MAP_COUNTERS: &str = "C2W_COUNTERS";
pub const MAP_HITS: &str = "C2W_HITS";
/// The slot filter's outer maps, one per size (index: bits -
/// [`FILTER_MIN_BITS`]): an inner array of a fixed size, unlike one shared by
/// arrays of every size (BPF_F_INNER_MAP), has its lookups inlined by the
/// verifier, and the filter is read twice for every packet. A set's filter
/// sits in the map of its `Config::filter_bits`.
pub const MAP_FILTERS: [&str; 12] = [
    "C2W_FILTER_6",
    "C2W_FILTER_7",
    "C2W_FILTER_8",
    "C2W_FILTER_9",
    "C2W_FILTER_10",
    "C2W_FILTER_11",
    "C2W_FILTER_12",
    "C2W_FILTER_13",
    "C2W_FILTER_14",
    "C2W_FILTER_15",
    "C2W_FILTER_16",
    "C2W_FILTER_17",
];
const _: () = assert!(MAP_FILTERS.len() == (FILTER_MAX_BITS - FILTER_MIN_BITS + 1) as usize);

/// The size a filter of `bits` index bits is created at: the smallest
/// size for a set without one (`bits` 0), which the program does not read.
pub const fn filter_class(bits: u8) -> u8 {
    if bits < FILTER_MIN_BITS {
        FILTER_MIN_BITS
    } else if bits > FILTER_MAX_BITS {
        FILTER_MAX_BITS
    } else {
        bits
    }
}

/// The outer map of the filters of `bits` index bits (see [`filter_class`]).
pub const fn filter_map(bits: u8) -> &'static str {
    MAP_FILTERS[(filter_class(bits) - FILTER_MIN_BITS) as usize]
}
pub const MAP_EVENTS: &str = "C2W_EVENTS";
pub const MAP_SAMPLER: &str = "C2W_SAMPLER";
pub const MAP_IFSLOT: &str = "C2W_IFSLOT";
/// Listed DNS names: name key ([`name_key`]) -> [`DNS_NAME_EXACT`] |
/// [`DNS_NAME_SUBTREE`].
pub const MAP_DNS_NAMES: &str = "C2W_DNS_NAMES";
/// Responses for listed names, [`DnsAnswer`] each, for the agent.
pub const MAP_DNS_ANSWERS: &str = "C2W_DNS_ANSWERS";
/// Per-CPU scratch holding the question name while it is walked.
pub const MAP_DNS_SCRATCH: &str = "C2W_DNS_SCRATCH";
/// One bit per listed name key, checked before [`MAP_DNS_NAMES`].
pub const MAP_DNS_FILTER: &str = "C2W_DNS_FILTER";
/// Every map the program uses, in the order userspace pins them.
pub const ALL_MAPS: [&str; 29] = [
    MAP_CONFIG,
    MAP_NODES_V4,
    MAP_NODES_V6,
    MAP_STASH_V4,
    MAP_STASH_V6,
    MAP_PORTS,
    MAP_ALLOW_V4,
    MAP_ALLOW_V6,
    MAP_COUNTERS,
    MAP_HITS,
    MAP_FILTERS[0],
    MAP_FILTERS[1],
    MAP_FILTERS[2],
    MAP_FILTERS[3],
    MAP_FILTERS[4],
    MAP_FILTERS[5],
    MAP_FILTERS[6],
    MAP_FILTERS[7],
    MAP_FILTERS[8],
    MAP_FILTERS[9],
    MAP_FILTERS[10],
    MAP_FILTERS[11],
    MAP_EVENTS,
    MAP_SAMPLER,
    MAP_IFSLOT,
    MAP_DNS_NAMES,
    MAP_DNS_ANSWERS,
    MAP_DNS_SCRATCH,
    MAP_DNS_FILTER,
];

/// Name of the XDP program in the object file (the `#[xdp]` function).
pub const PROGRAM_NAME: &str = "c2wall";
/// The same verdict logic at tc ingress (the `#[classifier]` function), for
/// interfaces where XDP cannot attach.
pub const TC_PROGRAM_NAME: &str = "c2wall_tc";

/// Maps of the naive comparison program (benchmark only, never deployed).
pub const MAP_NAIVE_V4: &str = "NAIVE_V4";
pub const MAP_NAIVE_V6: &str = "NAIVE_V6";
pub const NAIVE_PROGRAM_NAME: &str = "c2wall_naive";

/// Default upper limits of the inner maps (slots); each inner map is created
/// with what its content needs plus headroom, never more than these.
pub const DEFAULT_NODES_V4_CAPACITY: u32 = 4 * 1024 * 1024;
pub const DEFAULT_NODES_V6_CAPACITY: u32 = 2 * 1024 * 1024;
pub const DEFAULT_PORTS_CAPACITY: u32 = 1024 * 1024;
pub const ALLOW_CAPACITY: u32 = 65_536;
/// Default limit of the hit-counter map (keyed by entry id; id 0 is never
/// assigned; it holds the entries that were hit).
pub const DEFAULT_MAX_ENTRY_IDS: u32 = 2 * 1024 * 1024;
/// Rule sets: the active one and the one a reload fills.
pub const RULE_SETS: u32 = 2;

/// [`Config::allow`]: the IPv4 allowlist has prefixes.
pub const ALLOW_HAS_V4: u8 = 1;
/// [`Config::allow`]: the IPv6 allowlist has prefixes.
pub const ALLOW_HAS_V6: u8 = 2;

// Prefix expansion levels. A prefix of length L is stored at the smallest level
// >= L, expanded into 2^(level-L) slots; a lookup probes one hash slot per level
// that is in use, longest first. The stride bounds expansion (at most 8x for IPv4,
// 128x for IPv6) while keeping the number of probes per address small and, above
// all, independent of how many entries are loaded.
pub const V4_STRIDE: u32 = 4;
pub const V4_LEVELS: u32 = 32 / V4_STRIDE + 1;
pub const V6_STRIDE: u32 = 8;
pub const V6_LEVELS: u32 = 128 / V6_STRIDE + 1;

/// Global mode, [`Config::mode`]. Zero is `off` on purpose: a map that was never
/// configured must not drop anything.
pub const MODE_OFF: u32 = 0;
pub const MODE_ENFORCE: u32 = 1;
pub const MODE_MONITOR: u32 = 2;

/// The one element of [`MAP_CONFIG`].
///
/// Userspace changes one field per map update, so a reader racing an update sees
/// either the old or the new value of that field and never a mix of two changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// [`MODE_OFF`], [`MODE_ENFORCE`] or [`MODE_MONITOR`].
    pub mode: u32,
    /// Which of the two rule sets (0 or 1) packets are matched against. Flipping it
    /// is the atomic commit of a full reload.
    pub active_set: u32,
    /// Per set: bit i set means IPv4 level i*V4_STRIDE has slots.
    pub v4_levels: [u32; 2],
    /// Per set: bit i set means IPv6 level i*V6_STRIDE has slots.
    pub v6_levels: [u32; 2],
    /// Sampled drop events per CPU per second (0: none).
    pub sample_budget: u32,
    /// Per set: its filter map has `1 << filter_bits[set]` blocks and sits
    /// in [`filter_map`]`(filter_bits[set])`; 0: no filter (every level is
    /// probed).
    pub filter_bits: [u8; 2],
    /// [`ALLOW_HAS_V4`] | [`ALLOW_HAS_V6`]: which allowlists to consult; an
    /// empty one is skipped (the hit path is not charged for it).
    pub allow: u8,
    /// [`FOLLOW_DNS`] when some name is listed: only then does a DNS
    /// response cost more than any other packet.
    pub follow: u8,
    /// Jiffies per second (the kernel's HZ): the length of a sampling window,
    /// timed with `bpf_jiffies64()`, which costs a fraction of a clock read
    /// on every sampled hit. Userspace sets it (`clock_getres` of the coarse
    /// clock gives the tick); 0 counts as [`DEFAULT_SAMPLE_WINDOW`].
    pub sample_window: u32,
    /// The slot of [`MAP_HITS`] packets count in (0 or 1); `hit_slots` of
    /// it is its array's slots per CPU. A grown or shrunk array goes into
    /// the other slot, its `hit_slots` is written, then this flips: the
    /// program reads the size from here, not from the array (a lookup
    /// fewer on every hit), and never pairs one array with another's size.
    pub hit_index: u32,
    /// The coordinator version whose list the maps hold (0: none), native
    /// byte order. Written by userspace after each apply, never read by the
    /// program: the kernel is the truth a restarted agent must not go below.
    pub synced_version: u64,
    /// That version's store lineage (zeros: none).
    pub synced_lineage: [u8; 16],
    /// Per set: buckets in its IPv4 and IPv6 slot tables (see table.rs).
    pub v4_buckets: [u32; 2],
    pub v6_buckets: [u32; 2],
    /// Per set: levels (as in `v4_levels`) that have slots in the stash.
    pub stash_v4_levels: [u32; 2],
    pub stash_v6_levels: [u32; 2],
    /// Per set: the seed of its tables' hash, chosen at each reload.
    pub table_seed: [u64; 2],
    /// Per slot of [`MAP_HITS`]: the slots per CPU of the array in it (0:
    /// none); see `hit_index`.
    pub hit_slots: [u32; 2],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, contain no pointers, and have every
    // padding byte spelled out as a named field.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::V4Key {}
    unsafe impl aya::Pod for super::V6Key {}
    unsafe impl aya::Pod for super::Rule {}
    unsafe impl aya::Pod for super::NodeValue {}
    unsafe impl aya::Pod for super::PortKey {}
    unsafe impl aya::Pod for super::PortValue {}
    unsafe impl aya::Pod for super::FilterBlock {}
    unsafe impl aya::Pod for super::V4Bucket {}
    unsafe impl aya::Pod for super::V6Bucket {}
    unsafe impl aya::Pod for super::DropEvent {}
    unsafe impl aya::Pod for super::SamplerState {}
    unsafe impl aya::Pod for super::DnsAnswer {}
    unsafe impl aya::Pod for super::DnsScratch {}
}
