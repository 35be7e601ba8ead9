//! Following DNS answers (see c2wall_common::dns): for a UDP response from
//! port 53, key the question name and each parent, and copy the message to
//! the agent only when one of them is listed.
//!
//! The verdict notes the response in this CPU's scratch element ([`note`])
//! and the entry point follows it once the verdict is taken ([`follow`]);
//! DnsScratch says why. The name is copied into the scratch element a word
//! at a time and walked there: one bounded copy instead of a bounds check
//! per byte of the walk (which exceeds the verifier's budget). The message
//! of a listed name is copied with the hook's own helper
//! (`bpf_xdp_load_bytes`, `bpf_skb_load_bytes`): a plain memcpy, where
//! `bpf_probe_read_kernel` costs some 70 ns more (measured with
//! c2wall-bench).

use aya_ebpf::helpers::{
    bpf_ktime_get_coarse_ns,
    generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
};
use aya_ebpf::programs::{TcContext, XdpContext};
use c2wall_common::*;
use c2wall_xdp::parse::{Frame, Packet};

use crate::counters::count;
use crate::maps::{DNS_ANSWERS, DNS_FILTER, DNS_NAMES, DNS_SCRATCH};

const UDP_HLEN: usize = 8;
const DNS_HLEN: usize = 12;
/// Longest label (RFC 1035); larger length bytes are compression pointers
/// or invalid, neither of which a question name uses.
const MAX_LABEL: u32 = 63;
/// The transport header lies within this many bytes of the frame's start
/// for a response we follow (Ethernet, VLANs, IPv6 with extension headers).
const MAX_L4_OFFSET: usize = 1024;

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
        (*s).base = base;
        (*s).family = pkt.family;
        (*s).resolver = pkt.src.bytes();
        (*s).subscriber = pkt.dst.bytes();
    }
    true
}

/// Copies packet bytes from an offset of the frame, as each hook can.
pub trait LoadBytes {
    /// `len` bytes at `off` into `dst`; false when the packet is shorter.
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> bool;
    /// The linear part of the frame: start and end addresses.
    fn linear(&self) -> (usize, usize);
}

impl LoadBytes for XdpContext {
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the helper checks the bounds of both sides.
        unsafe { bpf_xdp_load_bytes(self.ctx, off, dst as *mut _, len) == 0 }
    }
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        (self.data(), self.data_end())
    }
}

impl LoadBytes for TcContext {
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the helper checks the bounds of both sides.
        unsafe { bpf_skb_load_bytes(self.skb.skb as *const _, off, dst as *mut _, len) == 0 }
    }
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        (self.data(), self.data_end())
    }
}

/// Copies `n` bytes (a multiple of 8) at `off` from the frame's start into
/// `s.bytes`, a word at a time straight from the packet while they lie in
/// its linear part: some 15 ns cheaper per response than the helper's call
/// (c2wall-bench). Returns how many it copied.
#[inline(always)]
fn copy_words<C: LoadBytes>(ctx: &C, s: &mut DnsScratch, off: u32, n: u32) -> u32 {
    let (data, data_end) = ctx.linear();
    let from = data + (off & 0x7ff) as usize;
    let mut done = 0u32;
    for w in 0..(DNS_NAME_BYTES / 8) {
        let at = w * 8;
        if at >= n {
            break;
        }
        let p = from + at as usize;
        if p + 8 > data_end {
            break;
        }
        // SAFETY: p..p + 8 lies within the linear frame (checked above);
        // at + 8 <= 256 within `bytes`.
        unsafe {
            let word = core::ptr::read_unaligned(p as *const u64);
            core::ptr::write_unaligned(s.bytes.as_mut_ptr().add(at as usize) as *mut u64, word);
        }
        done = at + 8;
    }
    done
}

/// Follows the response [`note`] noted, and counts what it did. Never
/// changes the verdict: the response passes or drops by the rules.
#[inline(never)]
pub fn follow<C: LoadBytes>(ctx: &C, ifindex: u32) {
    let Some(s) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's element; nothing else touches it while we run.
    let s = unsafe { &mut *s };
    let base = s.base;
    let counter = match walk(ctx, s, ifindex) {
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
fn walk<C: LoadBytes>(ctx: &C, s: &mut DnsScratch, ifindex: u32) -> Followed {
    let (start, end, l4) = (s.start as usize, s.end as usize, s.l4 as usize);
    if l4 > MAX_L4_OFFSET {
        return Followed::Unparsed;
    }
    let msg = start + l4 + UDP_HLEN;
    if msg + DNS_HLEN >= end || end - msg > 0xffff {
        return Followed::Unparsed;
    }
    // The message's length: what the frame holds (padding after a short
    // UDP payload is harmless to the agent's parser).
    let wire_len = end - msg;
    let mut n = wire_len - DNS_HLEN;
    if n > DNS_NAME_BYTES as usize {
        n = DNS_NAME_BYTES as usize;
    }
    // Offsets from the frame's start, as the helpers take them.
    let msg_off = (l4 + UDP_HLEN) as u32;
    // Whole words straight from the packet (`n` bytes lie in its linear
    // part: `end` is the linear end): a name is followed by its type and
    // class (and an answer by its records), so the bytes after the last
    // whole word never end a question's name.
    let n = n as u32 & !7;
    if copy_words(ctx, s, msg_off + DNS_HLEN as u32, n) != n {
        return Followed::Unparsed;
    }
    // Hidden from the compiler, which would otherwise drop the walk's
    // index masks as redundant with `n <= 256`: the verifier of kernel 6.1
    // cannot see that bound through a spill, and needs the masks.
    let n = hide(s, n);
    match listed(s, n) {
        None => Followed::Unparsed,
        Some(false) => Followed::Unlisted,
        Some(true) => copy_out(ctx, s, msg_off, wire_len, ifindex),
    }
}

/// Walks the wire-format name in `s.bytes[..n]` and probes the key of each
/// suffix of two labels or more: Some(true) when one is listed (exactly
/// for the whole name, or as a subtree), None when the name is malformed.
///
/// The walk jumps from length byte to length byte; label k's hash goes to
/// `s.labels[k]`, k being the loop's own count, so the verifier tracks one
/// state per label rather than one per way of splitting the name (which
/// exceeds its budget).
#[inline(always)]
fn listed(s: &mut DnsScratch, n: u32) -> Option<bool> {
    let mut pos: u32 = 0;
    let mut count = None;
    for k in 0..DNS_MAX_LABELS {
        if pos >= n {
            return None;
        }
        let len = s.bytes[(pos & 0xff) as usize] as u32;
        if len == 0 {
            count = Some(k);
            break;
        }
        if len > MAX_LABEL || pos + 1 + len >= n {
            return None;
        }
        let at = pos + 1;
        pos = at + len;
        let mut h = LABEL_SEED;
        for w in 0..LABEL_WORDS {
            if w * 8 >= len {
                break;
            }
            let i = ((at + w * 8) & 0xff) as usize;
            // SAFETY: i + 8 <= 263 lies within `bytes` (DNS_NAME_BYTES + 64).
            let word = unsafe { core::ptr::read_unaligned(s.bytes.as_ptr().add(i) as *const u64) };
            h = label_step(h, word, word_mask(len, w));
        }
        s.labels[k as usize] = h;
    }
    let count = count?;
    let mut key = NAME_SEED;
    for d in 0..DNS_SUFFIX_LABELS {
        if d >= count {
            break;
        }
        let idx = (count - 1 - d) as usize;
        if idx >= DNS_MAX_LABELS as usize {
            break;
        }
        key = suffix_step(key, s.labels[idx]);
        if d == 0 {
            // A single label is a top-level domain: never listed.
            continue;
        }
        let (word, bit) = filter_bit(key);
        match DNS_FILTER.get(word) {
            Some(w) if *w & bit != 0 => {}
            _ => continue,
        }
        // SAFETY: the value is only read.
        if let Some(&flags) = unsafe { DNS_NAMES.get(key) } {
            if flags & DNS_NAME_SUBTREE != 0 || (flags & DNS_NAME_EXACT != 0 && d + 1 == count) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// `len` (between 1 and `size`, a power of two: the caller knows) in a
/// form the verifier can bound on any kernel: `((len - 1) & (size - 1)) + 1`,
/// with `len - 1` passed through the scratch element as a volatile write
/// and read so the compiler cannot fold it all back into `len` (the
/// verifier of kernel 6.1 loses a bound checked on a spilled copy).
#[inline(always)]
fn opaque_len(s: &mut DnsScratch, len: u32, size: u32) -> u32 {
    (hide(s, len.wrapping_sub(1)) & (size - 1)) + 1
}

/// `v` as a value the compiler knows nothing about (a volatile write and
/// read of the scratch element).
#[inline(always)]
fn hide(s: &mut DnsScratch, v: u32) -> u32 {
    // SAFETY: a field of this CPU's element.
    unsafe {
        core::ptr::write_volatile(&mut s.copy_len, v);
        core::ptr::read_volatile(&s.copy_len)
    }
}

/// Copies the message (up to DNS_COPY_BYTES) with its addresses to the
/// answer ring buffer.
#[inline(always)]
fn copy_out<C: LoadBytes>(
    ctx: &C,
    s: &mut DnsScratch,
    msg_off: u32,
    wire_len: usize,
    ifindex: u32,
) -> Followed {
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
        let len = opaque_len(s, len as u32, DNS_COPY_BYTES as u32);
        if !ctx.load(msg_off, (*p).message.as_mut_ptr(), len) {
            entry.discard(0);
            return Followed::Unparsed;
        }
    }
    entry.submit(0);
    Followed::Copied
}
