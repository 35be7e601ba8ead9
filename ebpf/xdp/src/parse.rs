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

/// Addresses and ports of an IP packet, in network byte order.
pub struct Packet {
    pub family: u8,
    /// IPv4 uses the first four bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
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
    let start = ctx.start;
    let end = ctx.end;
    if start + off + N > end {
        return None;
    }
    // SAFETY: bounds checked just above against data_end.
    Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
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
    let Some(h) = bytes::<20>(ctx, off) else {
        return Parsed::Malformed;
    };
    if h[0] >> 4 != 4 {
        return Parsed::Malformed;
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Parsed::Malformed;
    }
    let frag_off = be16([h[6], h[7]]) & 0x1fff;
    let pkt = Packet {
        family: FAMILY_V4,
        src: v4_in_16([h[12], h[13], h[14], h[15]]),
        dst: v4_in_16([h[16], h[17], h[18], h[19]]),
        proto: h[9],
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
    let Some(h) = bytes::<IPV6_HLEN>(ctx, off) else {
        return Parsed::Malformed;
    };
    if h[0] >> 4 != 6 {
        return Parsed::Malformed;
    }
    let mut pkt = Packet {
        family: FAMILY_V6,
        src: [0; 16],
        dst: [0; 16],
        proto: h[6],
        has_ports: false,
        fragment: false,
        sport: [0; 2],
        dport: [0; 2],
        l4: 0,
    };
    pkt.src.copy_from_slice(&h[8..24]);
    pkt.dst.copy_from_slice(&h[24..40]);
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
    let Some(p) = bytes::<4>(ctx, off) else {
        return Parsed::Malformed;
    };
    if bytes::<1>(ctx, off + hlen - 1).is_none() {
        return Parsed::Malformed;
    }
    pkt.sport = [p[0], p[1]];
    pkt.dport = [p[2], p[3]];
    pkt.has_ports = true;
    pkt.l4 = off as u16;
    Parsed::Ip(pkt)
}
