//! Following DNS answers (see c2wall_common::dns): for a UDP response from
//! port 53, key the question name and each parent, and copy the message to
//! the agent only when one of them is listed.
//!
//! The verdict notes the response in this CPU's scratch element ([`note`])
//! and the entry point follows it once the verdict is taken ([`follow`]);
//! DnsScratch says why. The name is copied into the scratch element and
//! walked there: one bounded copy instead of a bounds check per byte. Packet
//! bytes are read with `bpf_probe_read_kernel` from the noted addresses,
//! which needs CAP_PERFMON, as the agent has.

use aya_ebpf::helpers::{bpf_ktime_get_coarse_ns, generated::bpf_probe_read_kernel};
use c2wall_common::*;
use c2wall_xdp::parse::{Frame, Packet};

use crate::counters::count;
use crate::maps::{DNS_ANSWERS, DNS_NAMES, DNS_SCRATCH};

const UDP_HLEN: usize = 8;
const DNS_HLEN: usize = 12;
/// Longest label (RFC 1035); larger length bytes are compression pointers
/// or invalid, neither of which a question name uses.
const MAX_LABEL: u32 = 63;
/// The transport header lies within this many bytes of the frame's start
/// for a response we follow (Ethernet, VLANs, IPv6 with extension headers).
const MAX_L4_OFFSET: usize = 1024;
const LAST: usize = DNS_SUFFIX_LABELS as usize - 1;

/// Whether `pkt` is a DNS response to look at.
#[inline(always)]
pub fn is_response(pkt: &Packet) -> bool {
    pkt.has_ports && pkt.proto == PROTO_UDP && pkt.sport == [0, 53]
}

/// Notes a response for [`follow`]; false when there is no scratch element.
#[inline(always)]
pub fn note(frame: &Frame, pkt: &Packet, base: u32) -> bool {
    let Some(s) = DNS_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's element; nothing else touches it while we run.
    unsafe {
        (*s).start = frame.start as u64;
        (*s).end = frame.end as u64;
        (*s).l4 = pkt.l4 as u32;
        (*s).zero = 0;
        (*s).base = base;
        (*s).family = pkt.family;
        (*s).resolver = pkt.src;
        (*s).subscriber = pkt.dst;
    }
    true
}

/// Follows the response [`note`] noted, and counts what it did. Never
/// changes the verdict: the response passes or drops by the rules.
#[inline(never)]
pub fn follow(ifindex: u32) {
    let Some(s) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's element; nothing else touches it while we run.
    let s = unsafe { &mut *s };
    let base = s.base;
    let counter = match walk(s, ifindex) {
        Followed::Unlisted => return,
        Followed::Copied => CNT_DNS_FOLLOWED,
        Followed::Lost => CNT_DNS_LOST,
        Followed::Unparsed => CNT_DNS_UNPARSED,
    };
    count(base + counter, 1);
}

enum Followed {
    /// No listed name: nothing copied (the common case).
    Unlisted,
    /// Copied to the agent.
    Copied,
    /// Listed, but the ring buffer was full.
    Lost,
    /// The question could not be walked.
    Unparsed,
}

#[inline(always)]
fn walk(s: &mut DnsScratch, ifindex: u32) -> Followed {
    let (start, end, l4) = (s.start as usize, s.end as usize, s.l4 as usize);
    if l4 > MAX_L4_OFFSET {
        return Followed::Unparsed;
    }
    let msg = start + l4 + UDP_HLEN;
    if msg + DNS_HLEN > end || end - msg > 0xffff {
        return Followed::Unparsed;
    }
    // The message's length: what the frame holds (padding after a short
    // UDP payload is harmless to the agent's parser).
    let wire_len = end - msg;
    let mut n = wire_len - DNS_HLEN;
    if n > DNS_NAME_BYTES as usize {
        n = DNS_NAME_BYTES as usize;
    }
    // SAFETY: the helper checks the source; `n` bytes fit the destination.
    let copied = unsafe {
        bpf_probe_read_kernel(
            s.bytes.as_mut_ptr() as *mut _,
            (n & 0x1ff) as u32,
            (msg + DNS_HLEN) as *const _,
        )
    };
    if copied != 0 {
        return Followed::Unparsed;
    }
    match listed(s, n as u32) {
        None => Followed::Unparsed,
        Some(false) => Followed::Unlisted,
        Some(true) => copy_out(s, msg, wire_len, ifindex),
    }
}

/// Walks the wire-format name in `s.bytes[..n]` and probes the key of each
/// suffix of two labels or more: Some(true) when one is listed (exactly
/// for the whole name, or as a subtree), None when the name is malformed.
///
/// The walk jumps from length byte to length byte and hashes each label as
/// a fixed number of words, so every way through it has the same shape and
/// the verifier tracks one state per label, not one per label layout. The
/// label count starts from `s.zero`, a 0 the verifier cannot see through,
/// for the same reason.
#[inline(always)]
fn listed(s: &mut DnsScratch, n: u32) -> Option<bool> {
    let mut labels = s.zero;
    let mut pos: u32 = 0;
    let mut ended = false;
    for _ in 0..DNS_MAX_LABELS {
        if pos >= n {
            return None;
        }
        let len = s.bytes[(pos & 0xff) as usize] as u32;
        if len == 0 {
            ended = true;
            break;
        }
        if len > MAX_LABEL || pos + 1 + len >= n {
            return None;
        }
        let at = pos + 1;
        pos = at + len;
        let mut h = LABEL_SEED;
        for w in 0..LABEL_WORDS {
            let i = ((at + w * 8) & 0xff) as usize;
            // SAFETY: i + 8 <= 263 lies within `bytes` (DNS_NAME_BYTES + 64).
            let word = unsafe { core::ptr::read_unaligned(s.bytes.as_ptr().add(i) as *const u64) };
            h = label_step(h, word, word_mask(len, w));
        }
        shift_in(&mut s.labels, h);
        labels += 1;
    }
    if !ended {
        return None;
    }
    let mut key = NAME_SEED;
    for d in 0..DNS_SUFFIX_LABELS {
        if d >= labels {
            break;
        }
        key = suffix_step(key, s.labels[d as usize]);
        if d == 0 {
            // A single label is a top-level domain: never listed.
            continue;
        }
        // SAFETY: the value is only read.
        if let Some(&flags) = unsafe { DNS_NAMES.get(key) } {
            if flags & DNS_NAME_SUBTREE != 0 || (flags & DNS_NAME_EXACT != 0 && d + 1 == labels) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// Pushes a label's hash in front, dropping the oldest. Constant indices
/// only (see [`listed`]).
#[inline(always)]
fn shift_in(labels: &mut [u64; DNS_SUFFIX_LABELS as usize], h: u64) {
    let mut k = LAST;
    while k > 0 {
        labels[k] = labels[k - 1];
        k -= 1;
    }
    labels[0] = h;
}

/// Copies the message (up to DNS_COPY_BYTES) with its addresses to the
/// answer ring buffer.
#[inline(always)]
fn copy_out(s: &DnsScratch, msg: usize, wire_len: usize, ifindex: u32) -> Followed {
    let Some(mut entry) = DNS_ANSWERS.reserve::<DnsAnswer>(0) else {
        return Followed::Lost;
    };
    let mut len = wire_len;
    if len > DNS_COPY_BYTES {
        len = DNS_COPY_BYTES;
    }
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is the reserved record; the message beyond `len` is never
    // read by the agent.
    unsafe {
        (*p).ts_ns = bpf_ktime_get_coarse_ns();
        (*p).ifindex = ifindex;
        (*p).len = len as u16;
        (*p).wire_len = wire_len as u16;
        (*p).family = s.family;
        (*p)._pad = [0; 7];
        (*p).resolver = s.resolver;
        (*p).subscriber = s.subscriber;
        let copied = bpf_probe_read_kernel(
            (*p).message.as_mut_ptr() as *mut _,
            (len & 0x7ff) as u32,
            msg as *const _,
        );
        if copied != 0 {
            entry.discard(0);
            return Followed::Unparsed;
        }
    }
    entry.submit(0);
    Followed::Copied
}
