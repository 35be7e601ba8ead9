//! Sampled drop events: the XDP program writes them to the ring buffer
//! [`crate::MAP_EVENTS`], at most `Config::sample_budget` per CPU per second
//! ([`SamplerState`] keeps each CPU's window), so a flood costs userspace a
//! bounded rate and the program never waits.

/// One dropped (or would-drop) packet. Addresses and ports are in network
/// byte order; IPv4 addresses use the first four bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent {
    /// `bpf_ktime_get_coarse_ns()`: CLOCK_MONOTONIC nanoseconds (tick resolution).
    pub ts_ns: u64,
    /// The entry that matched (its id; see the agent's id table).
    pub entry_id: u32,
    /// The interface the packet arrived on.
    pub ifindex: u32,
    /// [`crate::VERDICT_DROP`] or [`crate::VERDICT_WOULD_DROP`].
    pub verdict: u8,
    /// [`crate::DIR_TO_CC`] or [`crate::DIR_FROM_CC`].
    pub direction: u8,
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`].
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Ports (0 when the packet has none); network byte order.
    pub subscriber_port: [u8; 2],
    pub cc_port: [u8; 2],
    /// The subscriber's side of the packet and the C&C side.
    pub subscriber: [u8; 16],
    pub cc: [u8; 16],
}

/// Per-CPU sampling window: when it started and how many events it used;
/// and the CPU's sampling results, counted here rather than in
/// [`crate::MAP_COUNTERS`] so that a hit past the budget (every hit of a
/// flood) touches one value, not two. Userspace reports them as the
/// counters [`crate::CNT_SAMPLED`], [`crate::CNT_SAMPLE_SUPPRESSED`] and
/// [`crate::CNT_SAMPLE_LOST`] (not per interface).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplerState {
    /// `bpf_jiffies64()` at the window's start.
    pub window_start: u64,
    pub used: u32,
    pub _pad: u32,
    /// Events written to the ring buffer.
    pub written: u64,
    /// Events not written: the budget for the window was used up.
    pub suppressed: u64,
    /// Events not written: the ring buffer was full.
    pub lost: u64,
}

/// Sampling window in jiffies when `Config::sample_window` is 0: one second
/// at the largest usual HZ, four at 250.
pub const DEFAULT_SAMPLE_WINDOW: u32 = 1000;

/// Ring buffer size in bytes (a power of two, a multiple of the page size):
/// about 4,600 events of 56 bytes (+8 header) waiting for userspace.
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Default events per CPU per second.
pub const DEFAULT_SAMPLE_BUDGET: u32 = 100;

/// Interface slots of the counters: slot 0 is any interface without one.
pub const IFACE_SLOTS: u32 = 16;
/// Size of [`crate::MAP_IFSLOT`]: indexed by `ifindex % IFINDEX_BUCKETS`.
pub const IFINDEX_BUCKETS: u32 = 1024;
