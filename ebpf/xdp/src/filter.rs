//! The slot filter's reading: which levels each side of a packet may be
//! at (layout: c2wall_common::filter), before any node map is read.

use c2wall_common::*;
use c2wall_xdp::parse::Packet;

use crate::maps::{
    CONFIG, FILTER_10, FILTER_11, FILTER_12, FILTER_13, FILTER_14, FILTER_15, FILTER_16, FILTER_17,
    FILTER_6, FILTER_7, FILTER_8, FILTER_9,
};

/// `$body` with `$f` the filter of rule set `$set` in the outer map of size
/// `$bits`, or `$none` when there is none. One arm per size: each arm's
/// lookups are inlined (the inner map's size is known), and each arm ends in
/// plain numbers, so the verifier's paths through the arms join again.
macro_rules! with_filter {
    ($bits:expr, $set:expr, $none:expr, |$f:ident| $body:expr) => {
        match $bits {
            6 => with_filter!(@ FILTER_6, $set, $none, $f, $body),
            7 => with_filter!(@ FILTER_7, $set, $none, $f, $body),
            8 => with_filter!(@ FILTER_8, $set, $none, $f, $body),
            9 => with_filter!(@ FILTER_9, $set, $none, $f, $body),
            10 => with_filter!(@ FILTER_10, $set, $none, $f, $body),
            11 => with_filter!(@ FILTER_11, $set, $none, $f, $body),
            12 => with_filter!(@ FILTER_12, $set, $none, $f, $body),
            13 => with_filter!(@ FILTER_13, $set, $none, $f, $body),
            14 => with_filter!(@ FILTER_14, $set, $none, $f, $body),
            15 => with_filter!(@ FILTER_15, $set, $none, $f, $body),
            16 => with_filter!(@ FILTER_16, $set, $none, $f, $body),
            17 => with_filter!(@ FILTER_17, $set, $none, $f, $body),
            _ => $none,
        }
    };
    (@ $map:ident, $set:expr, $none:expr, $f:ident, $body:expr) => {
        match $map.get($set) {
            Some($f) => $body,
            None => $none,
        }
    };
}

/// The levels of rule set `set` that may hold a slot for the packet's
/// destination and for its source (bit i: level index i of its family; 0: a
/// sure miss, decided without the node maps). Of the levels the filter
/// covers, only those the address's filter block names remain
/// (c2wall_common::filter); levels it does not cover, and every level when
/// there is no filter, remain.
#[inline(always)]
pub fn possible(pkt: &Packet, set: u32) -> (u32, u32) {
    if pkt.family == FAMILY_V4 {
        possible_v4(set, pkt.dst.v4(), pkt.src.v4())
    } else {
        possible_v6(set, pkt.dst.halves(), pkt.src.halves())
    }
}

/// Rule set `set`'s filter size and its levels of `family`. The config is
/// read here, not passed: with the caller's reference held across the size
/// arms, the main frame grew past what the 512-byte stack of the deepest
/// call chain allows.
#[inline(always)]
fn size_and_levels(set: u32, family: u8) -> (u8, u32) {
    let Some(cfg) = CONFIG.get(0) else {
        return (0, 0);
    };
    let s = (set & 1) as usize;
    let levels = if family == FAMILY_V4 {
        cfg.v4_levels[s]
    } else {
        cfg.v6_levels[s]
    };
    (cfg.filter_bits[s], levels)
}

/// [`possible`] for IPv4 addresses `d` and `a` (host order).
#[inline(always)]
fn possible_v4(set: u32, d: u32, a: u32) -> (u32, u32) {
    let (bits, levels) = size_and_levels(set, FAMILY_V4);
    let (di, ai) = (
        filter_block_v4(bits as u32, d),
        filter_block_v4(bits as u32, a),
    );
    with_filter!(bits, set, (levels, levels), |f| (
        side_v4(f.get(di), d, levels),
        side_v4(f.get(ai), a, levels)
    ))
}

/// [`possible_v4`] for IPv6 addresses (high, low halves, host order).
#[inline(always)]
fn possible_v6(set: u32, (dh, dl): (u64, u64), (ah, al): (u64, u64)) -> (u32, u32) {
    let (bits, levels) = size_and_levels(set, FAMILY_V6);
    let (di, ai) = (
        filter_block_v6(bits as u32, dh),
        filter_block_v6(bits as u32, ah),
    );
    with_filter!(bits, set, (levels, levels), |f| (
        side_v6(f.get(di), dh, dl, levels),
        side_v6(f.get(ai), ah, al, levels)
    ))
}

/// One side's levels from its IPv4 filter block (see [`possible`]).
#[inline(always)]
fn side_v4(block: Option<&FilterBlock>, a: u32, levels: u32) -> u32 {
    match block {
        Some(b) => levels & b.possible_v4(a),
        None => levels,
    }
}

#[inline(always)]
fn side_v6(block: Option<&FilterBlock>, hi: u64, lo: u64, levels: u32) -> u32 {
    match block {
        Some(b) => levels & b.possible_v6(hi, lo),
        None => levels,
    }
}
