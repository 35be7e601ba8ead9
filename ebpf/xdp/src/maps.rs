//! Map definitions. Names must match c2wall_common::MAP_*; userspace pins them.
//!
//! The rule maps and the hit counters are arrays of maps (BTF-defined, which
//! is how the inner map's type reaches the loader): userspace creates each
//! inner map sized to its content and swaps it in whole, so kernel memory
//! follows the list and a map grows or shrinks with no enforcement gap. The
//! inner definitions below are templates; only their types and flags bind
//! the real inner maps, not their sizes.

use aya_ebpf::{
    bindings::{BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    btf_maps::{self, ArrayOfMaps},
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use c2wall_common::*;

#[map(name = "C2W_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

const NO_PREALLOC: usize = BPF_F_NO_PREALLOC as usize;
const INNER: usize = BPF_F_INNER_MAP as usize;

const MMAPABLE: usize = BPF_F_MMAPABLE as usize;

// The slot tables (c2wall_common::table): arrays of buckets, MMAPABLE so
// userspace fills and patches them as memory.
pub type NodesV4 = btf_maps::Array<V4Bucket, 1, { INNER | MMAPABLE }>;
pub type NodesV6 = btf_maps::Array<V6Bucket, 1, { INNER | MMAPABLE }>;
// NO_PREALLOC: memory follows what is loaded, and updates and deletes are
// safe against concurrent lookups.
pub type StashV4 = btf_maps::HashMap<V4Key, u64, 1, NO_PREALLOC>;
pub type StashV6 = btf_maps::HashMap<V6Key, u64, 1, NO_PREALLOC>;
pub type Ports = btf_maps::HashMap<PortKey, PortValue, 1, NO_PREALLOC>;
// One size per outer map (c2wall_common::MAP_FILTERS), so the verifier
// inlines the lookup; MMAPABLE: a reload writes the whole filter as memory.
pub type Filter<const N: usize> = btf_maps::Array<FilterBlock, N, MMAPABLE>;
// Element 0: slots per CPU (S, for userspace: the program reads it from
// Config::hit_slots), then entry ids and per-CPU counters
// (c2wall_common::hit_counter_index). A plain
// array because only plain arrays may differ in size behind one outer map;
// MMAPABLE so userspace reads the counters as memory.
pub type Hits = btf_maps::Array<u64, 1, { INNER | MMAPABLE }>;

/// Index = rule set.
#[btf_map(name = "C2W_NODES_V4")]
pub static NODES_V4: ArrayOfMaps<NodesV4, 2> = ArrayOfMaps::new();

#[btf_map(name = "C2W_NODES_V6")]
pub static NODES_V6: ArrayOfMaps<NodesV6, 2> = ArrayOfMaps::new();

#[btf_map(name = "C2W_STASH_V4")]
pub static STASH_V4: ArrayOfMaps<StashV4, 2> = ArrayOfMaps::new();

#[btf_map(name = "C2W_STASH_V6")]
pub static STASH_V6: ArrayOfMaps<StashV6, 2> = ArrayOfMaps::new();

#[btf_map(name = "C2W_PORTS")]
pub static PORTS: ArrayOfMaps<Ports, 2> = ArrayOfMaps::new();

#[map(name = "C2W_ALLOW_V4")]
pub static ALLOW_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

#[map(name = "C2W_ALLOW_V6")]
pub static ALLOW_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

// COUNTER_SLOTS per interface slot, two to an element (COUNTER_PAIRS); see
// C2W_IFSLOT.
#[map(name = "C2W_COUNTERS")]
pub static COUNTERS: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(COUNTER_PAIRS, 0);

// ifindex % IFINDEX_BUCKETS -> interface slot (1..IFACE_SLOTS), written by the
// agent when it attaches; 0 (never written) counts under slot 0. An array,
// not a hash: one bounds check per packet.
#[map(name = "C2W_IFSLOT")]
pub static IFSLOT: Array<u32> = Array::with_max_entries(IFINDEX_BUCKETS, 0);

// Sampled drop events for userspace (sightings), rate-limited per CPU.
#[map(name = "C2W_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map(name = "C2W_SAMPLER")]
pub static SAMPLER: PerCpuArray<SamplerState> = PerCpuArray::with_max_entries(1, 0);

// Per-entry hit counts, indexed by the counter slot userspace gives each
// entry (`Rule::counter`), in the inner map at `Config::hit_index` (the
// other slot takes a resized array before the flip). One counter per
// CPU, each CPU's contiguous, so a flood never contends on one cache line;
// an array, not a hash keyed by entry id, so counting costs no hash probe.
#[btf_map(name = "C2W_HITS")]
pub static HITS: ArrayOfMaps<Hits, 2> = ArrayOfMaps::new();

// Per set, `1 << Config::filter_bits[set]` 64-byte blocks in the outer map
// of that size (an array lookup is a bounds check and an add, cheaper than
// any hash probe). Names: c2wall_common::MAP_FILTERS.
#[btf_map(name = "C2W_FILTER_6")]
pub static FILTER_6: ArrayOfMaps<Filter<{ 1 << 6 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_7")]
pub static FILTER_7: ArrayOfMaps<Filter<{ 1 << 7 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_8")]
pub static FILTER_8: ArrayOfMaps<Filter<{ 1 << 8 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_9")]
pub static FILTER_9: ArrayOfMaps<Filter<{ 1 << 9 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_10")]
pub static FILTER_10: ArrayOfMaps<Filter<{ 1 << 10 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_11")]
pub static FILTER_11: ArrayOfMaps<Filter<{ 1 << 11 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_12")]
pub static FILTER_12: ArrayOfMaps<Filter<{ 1 << 12 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_13")]
pub static FILTER_13: ArrayOfMaps<Filter<{ 1 << 13 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_14")]
pub static FILTER_14: ArrayOfMaps<Filter<{ 1 << 14 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_15")]
pub static FILTER_15: ArrayOfMaps<Filter<{ 1 << 15 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_16")]
pub static FILTER_16: ArrayOfMaps<Filter<{ 1 << 16 }>, 2> = ArrayOfMaps::new();
#[btf_map(name = "C2W_FILTER_17")]
pub static FILTER_17: ArrayOfMaps<Filter<{ 1 << 17 }>, 2> = ArrayOfMaps::new();

// Listed DNS names (see c2wall_common::dns). A plain hash without
// prealloc: names are added and removed one by one, memory follows them.
#[map(name = "C2W_DNS_NAMES")]
pub static DNS_NAMES: HashMap<u64, u32> =
    HashMap::with_max_entries(DNS_NAMES_CAPACITY, BPF_F_NO_PREALLOC);

// Responses for listed names, for the agent to parse.
#[map(name = "C2W_DNS_ANSWERS")]
pub static DNS_ANSWERS: RingBuf = RingBuf::with_byte_size(DNS_ANSWERS_BYTES, 0);

#[map(name = "C2W_DNS_SCRATCH")]
pub static DNS_SCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);

// One bit per listed name key (see c2wall_common::filter_bit).
#[map(name = "C2W_DNS_FILTER")]
pub static DNS_FILTER: Array<u64> = Array::with_max_entries(DNS_FILTER_WORDS, 0);
