//! Bounded header walking. Every read is checked against `data_end` first (the
//! verifier insists, and a truncated packet must never be misread).

use c2wall_common::{FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLAN_TAGS: usize = 2;

const IPV6_HLEN: usize = 40;
const NH_HOPOPTS: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;
const NH_DSTOPTS: u8 = 60;
/// Extension headers walked before giving up on finding the transport header.
const MAX_V6_EXT: usize = 8;

/// An address's 16 bytes as they lie in the packet (network order; IPv4 in
/// the first four, the rest zero), held as two words: the parser reads them
/// with two loads, not sixteen, and a lookup turns them into numbers with a
/// byte swap, not sixteen shifts. The program is little-endian (bpfel).
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Addr(pub [u64; 2]);

impl Addr {
    #[inline(always)]
    pub fn bytes(&self) -> [u8; 16] {
        // SAFETY: 16 bytes of plain data either way.
        unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(self.0) }
    }
    /// An IPv4 address's four bytes.
    #[inline(always)]
    pub fn v4_bytes(&self) -> [u8; 4] {
        (self.0[0] as u32).to_le_bytes()
    }
    /// An IPv4 address as a number (host order).
    #[inline(always)]
    pub fn v4(&self) -> u32 {
        u32::from_be(self.0[0] as u32)
    }
    /// An IPv6 address as its high and low 64 bits (host order).
    #[inline(always)]
    pub fn halves(&self) -> (u64, u64) {
        (u64::from_be(self.0[0]), u64::from_be(self.0[1]))
    }
}

/// Addresses and ports of an IP packet, in network byte order.
pub struct Packet {
    pub family: u8,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    /// False for non-first fragments and transports other than TCP/UDP: only
    /// address entries can match such packets.
    pub has_ports: bool,
    pub fragment: bool,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    /// Offset of the transport header from the frame's start (valid when
    /// `has_ports`).
    pub l4: u16,
}

pub enum Parsed {
    Ip(Packet),
    NonIp,
    /// Truncated or malformed headers: must pass untouched.
    Malformed,
}

/// The bytes of one frame as the hook sees them (XDP: the whole frame; tc:
/// the linear part of the skb, starting at the Ethernet header).
#[derive(Clone, Copy)]
pub struct Frame {
    pub start: usize,
    pub end: usize,
}

#[inline(always)]
fn bytes<const N: usize>(ctx: &Frame, off: usize) -> Option<[u8; N]> {
    load::<[u8; N]>(ctx, off)
}

/// The `T` at `off`, read with loads of `T`'s words: a read of unaligned
/// bytes is a load per byte in BPF, and an IPv6 header's addresses were 32
/// of them. Header fields are not aligned in every frame; the kernel admits
/// unaligned packet loads on the platforms that have them cheaply (x86-64,
/// which this is built for, as c2wall_common::table notes).
#[inline(always)]
fn load<T: Copy>(ctx: &Frame, off: usize) -> Option<T> {
    let start = ctx.start;
    let end = ctx.end;
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    // SAFETY: bounds checked just above against data_end; see above for
    // the alignment.
    Some(unsafe { core::ptr::read((start + off) as *const T) })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
pub fn parse(ctx: &Frame) -> Parsed {
    let Some(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return Parsed::Malformed;
    };
    let mut proto = be16([eth[12], eth[13]]);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let Some(tag) = bytes::<4>(ctx, off) else {
            return Parsed::Malformed;
        };
        proto = be16([tag[2], tag[3]]);
        off += 4;
    }
    match proto {
        ETH_P_IP => parse_v4(ctx, off),
        ETH_P_IPV6 => parse_v6(ctx, off),
        // A third VLAN tag is beyond what we walk: unknown, not malformed.
        _ => Parsed::NonIp,
    }
}

#[inline(always)]
fn parse_v4(ctx: &Frame, off: usize) -> Parsed {
    // Five words, as they lie: version and length; id and fragment; TTL,
    // protocol and checksum; source; destination.
    let Some(h) = load::<[u32; 5]>(ctx, off) else {
        return Parsed::Malformed;
    };
    let first = h[0] as u8;
    if first >> 4 != 4 {
        return Parsed::Malformed;
    }
    let ihl = ((first & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Parsed::Malformed;
    }
    let frag_off = u16::from_be((h[1] >> 16) as u16) & 0x1fff;
    let pkt = Packet {
        family: FAMILY_V4,
        src: Addr([h[3] as u64, 0]),
        dst: Addr([h[4] as u64, 0]),
        proto: (h[2] >> 8) as u8,
        has_ports: false,
        fragment: frag_off != 0,
        sport: [0; 2],
        dport: [0; 2],
        l4: 0,
    };
    // Options must be present in full even when we do not read them.
    if bytes::<1>(ctx, off + ihl - 1).is_none() {
        return Parsed::Malformed;
    }
    if pkt.fragment {
        return Parsed::Ip(pkt);
    }
    transport(ctx, off + ihl, pkt)
}

/// An IPv4 address in the first 4 of 16 bytes, the rest zero. Built as one
/// 128-bit value: two 8-byte stores, where a zeroed array then partly
/// overwritten costs a byte-by-byte memset call in BPF.
#[inline(always)]
pub fn v4_in_16(a: [u8; 4]) -> [u8; 16] {
    (u32::from_le_bytes(a) as u128).to_le_bytes()
}

#[inline(always)]
fn parse_v6(ctx: &Frame, off: usize) -> Parsed {
    // Five words: version, class, label, length, next header, hop limit;
    // the source's halves; the destination's.
    let Some(h) = load::<[u64; 5]>(ctx, off) else {
        return Parsed::Malformed;
    };
    if (h[0] as u8) >> 4 != 6 {
        return Parsed::Malformed;
    }
    let mut pkt = Packet {
        family: FAMILY_V6,
        src: Addr([h[1], h[2]]),
        dst: Addr([h[3], h[4]]),
        proto: (h[0] >> 48) as u8,
        has_ports: false,
        fragment: false,
        sport: [0; 2],
        dport: [0; 2],
        l4: 0,
    };
    let mut off = off + IPV6_HLEN;
    for _ in 0..MAX_V6_EXT {
        let len = match pkt.proto {
            NH_HOPOPTS | NH_ROUTING | NH_DSTOPTS => {
                let Some(e) = bytes::<2>(ctx, off) else {
                    return Parsed::Malformed;
                };
                pkt.proto = e[0];
                (e[1] as usize + 1) * 8
            }
            NH_AH => {
                let Some(e) = bytes::<2>(ctx, off) else {
                    return Parsed::Malformed;
                };
                pkt.proto = e[0];
                (e[1] as usize + 2) * 4
            }
            NH_FRAGMENT => {
                let Some(e) = bytes::<8>(ctx, off) else {
                    return Parsed::Malformed;
                };
                pkt.proto = e[0];
                if be16([e[2], e[3]]) >> 3 != 0 {
                    pkt.fragment = true;
                }
                8
            }
            _ => return transport(ctx, off, pkt),
        };
        off += len;
    }
    // Chain longer than we walk: the addresses are still known, ports are not.
    Parsed::Ip(pkt)
}

#[inline(always)]
fn transport(ctx: &Frame, off: usize, mut pkt: Packet) -> Parsed {
    if pkt.fragment {
        return Parsed::Ip(pkt);
    }
    let hlen = match pkt.proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return Parsed::Ip(pkt),
    };
    let Some(p) = load::<u32>(ctx, off) else {
        return Parsed::Malformed;
    };
    if bytes::<1>(ctx, off + hlen - 1).is_none() {
        return Parsed::Malformed;
    }
    let p = p.to_le_bytes();
    pkt.sport = [p[0], p[1]];
    pkt.dport = [p[2], p[3]];
    pkt.has_ports = true;
    pkt.l4 = off as u16;
    Parsed::Ip(pkt)
}
