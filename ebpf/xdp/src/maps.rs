//! Map definitions. Names must match c2wall_common::MAP_*; userspace overrides
//! the capacities before creating the maps and pins them.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, PerCpuHashMap, RingBuf},
};
use c2wall_common::*;

#[map(name = "C2W_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

// NO_PREALLOC: capacity is sized for millions of slots, memory should follow what
// is loaded. It also makes updates and deletes safe against concurrent lookups.
#[map(name = "C2W_NODES_V4")]
pub static NODES_V4: HashMap<V4Key, NodeValue> =
    HashMap::with_max_entries(DEFAULT_NODES_V4_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "C2W_NODES_V6")]
pub static NODES_V6: HashMap<V6Key, NodeValue> =
    HashMap::with_max_entries(DEFAULT_NODES_V6_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "C2W_PORTS")]
pub static PORTS: HashMap<PortKey, PortValue> =
    HashMap::with_max_entries(DEFAULT_PORTS_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "C2W_ALLOW_V4")]
pub static ALLOW_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

#[map(name = "C2W_ALLOW_V6")]
pub static ALLOW_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

// COUNTER_SLOTS per interface slot; see C2W_IFSLOT.
#[map(name = "C2W_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_ARRAY, 0);

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

// Per-entry hit counts, keyed by entry id. Per-CPU so a flood never contends on
// one cache line; a hash (not an array) so memory is spent only on entries that
// were hit, not on every possible id times every CPU.
#[map(name = "C2W_HITS")]
pub static HITS: PerCpuHashMap<u32, u64> =
    PerCpuHashMap::with_max_entries(DEFAULT_MAX_ENTRY_IDS, BPF_F_NO_PREALLOC);

// Two sets of FILTER_BLOCKS_PER_SET 64-byte blocks (16 MiB, preallocated: an
// array lookup is a bounds check and an add, cheaper than any hash probe).
#[map(name = "C2W_FILTER")]
pub static FILTER: Array<FilterBlock> = Array::with_max_entries(2 * FILTER_BLOCKS_PER_SET, 0);
