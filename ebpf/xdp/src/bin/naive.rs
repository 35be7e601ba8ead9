//! Benchmark baseline, never deployed: the straightforward design with one LPM
//! trie per family and two lookups per packet (destination, then source). Same
//! parser and counters as the real program so the comparison isolates the
//! lookup structure.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{lpm_trie::Key, LpmTrie, PerCpuArray},
    programs::XdpContext,
};
use c2wall_common::*;
use c2wall_xdp::parse::{parse, Frame, Parsed};

#[map(name = "NAIVE_V4")]
static NAIVE_V4: LpmTrie<[u8; 4], Rule> = LpmTrie::with_max_entries(2 * 1024 * 1024, 0);
#[map(name = "NAIVE_V6")]
static NAIVE_V6: LpmTrie<[u8; 16], Rule> = LpmTrie::with_max_entries(2 * 1024 * 1024, 0);
#[map(name = "C2W_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[xdp]
pub fn c2wall_naive(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let Parsed::Ip(pkt) = parse(&Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    }) else {
        count(CNT_PARSE_ERROR, 1);
        return xdp_action::XDP_PASS;
    };
    let action = |r: Option<&Rule>| r.map(|r| r.action).unwrap_or(ACTION_NONE);
    let (to, from) = if pkt.family == FAMILY_V4 {
        (
            action(NAIVE_V4.get(Key::new(32, pkt.dst.v4_bytes()))),
            action(NAIVE_V4.get(Key::new(32, pkt.src.v4_bytes()))),
        )
    } else {
        (
            action(NAIVE_V6.get(Key::new(128, pkt.dst.bytes()))),
            action(NAIVE_V6.get(Key::new(128, pkt.src.bytes()))),
        )
    };
    let fam = if pkt.family == FAMILY_V4 { 0 } else { 1 };
    match to.max(from) {
        ACTION_DROP => {
            count(
                verdict_counter(VERDICT_DROP, DIR_TO_CC, fam, UNIT_PACKETS),
                1,
            );
            count(
                verdict_counter(VERDICT_DROP, DIR_TO_CC, fam, UNIT_BYTES),
                len,
            );
            xdp_action::XDP_DROP
        }
        _ => {
            count(
                verdict_counter(VERDICT_PASS, DIR_TO_CC, fam, UNIT_PACKETS),
                1,
            );
            count(
                verdict_counter(VERDICT_PASS, DIR_TO_CC, fam, UNIT_BYTES),
                len,
            );
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot.
        unsafe { *p += n };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
