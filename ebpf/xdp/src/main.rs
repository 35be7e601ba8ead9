//! c2wall XDP program: drop packets to or from listed C&C addresses.
//!
//! Per packet: parse, read the config, probe the destination and the source in the
//! active rule set (one hash probe per expansion level in use), take the stronger
//! match, let the protected allowlist veto it, count, decide.
#![no_std]
#![no_main]

mod lookup;
mod maps;

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    macros::xdp,
    programs::XdpContext,
};
use c2wall_common::*;
use c2wall_xdp::parse::{parse, Parsed};

use crate::lookup::{allowlisted, side_rule};
use crate::maps::{CONFIG, COUNTERS, HITS};

#[xdp]
pub fn c2wall(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let pkt = match parse(&ctx) {
        Parsed::Ip(p) => p,
        Parsed::NonIp => {
            count(CNT_NON_IP, 1);
            return xdp_action::XDP_PASS;
        }
        Parsed::Malformed => {
            count(CNT_PARSE_ERROR, 1);
            return xdp_action::XDP_PASS;
        }
    };
    let Some(cfg) = CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let mode = cfg.mode;
    if mode != MODE_ENFORCE && mode != MODE_MONITOR {
        count(CNT_MODE_OFF, 1);
        return xdp_action::XDP_PASS;
    }
    if pkt.fragment {
        count(CNT_FRAGMENT, 1);
    }
    let fam = if pkt.family == FAMILY_V4 {
        FAM_IDX_V4
    } else {
        FAM_IDX_V6
    };
    let set = cfg.active_set & 1;
    let levels = if pkt.family == FAMILY_V4 {
        cfg.v4_levels[set as usize]
    } else {
        cfg.v6_levels[set as usize]
    };
    let to = side_rule(&pkt, set, levels, true);
    let from = side_rule(&pkt, set, levels, false);
    // The stronger action decides; on a tie the destination side is reported.
    let (rule, dir) = if to.action >= from.action {
        (to, DIR_TO_CC)
    } else {
        (from, DIR_FROM_CC)
    };
    if rule.action == ACTION_NONE {
        count_verdict(VERDICT_PASS, DIR_TO_CC, fam, len);
        return xdp_action::XDP_PASS;
    }
    // Checked only once something matched: the allowlist is small, but the miss
    // path is the hot one and must not pay for it.
    if allowlisted(&pkt) {
        count_verdict(VERDICT_ALLOWLISTED, dir, fam, len);
        return xdp_action::XDP_PASS;
    }
    hit(rule.entry_id);
    if rule.action == ACTION_DROP && mode == MODE_ENFORCE {
        count_verdict(VERDICT_DROP, dir, fam, len);
        xdp_action::XDP_DROP
    } else {
        count_verdict(VERDICT_WOULD_DROP, dir, fam, len);
        xdp_action::XDP_PASS
    }
}

#[inline(always)]
fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *p += n };
    }
}

#[inline(always)]
fn count_verdict(verdict: u32, dir: u32, fam: u32, len: u64) {
    count(verdict_counter(verdict, dir, fam, UNIT_PACKETS), 1);
    count(verdict_counter(verdict, dir, fam, UNIT_BYTES), len);
}

#[inline(always)]
fn hit(entry_id: u32) {
    if let Some(p) = HITS.get_ptr_mut(entry_id) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe { *p += 1 };
    } else if HITS.insert(entry_id, 1, BPF_NOEXIST as u64).is_err() {
        // Another CPU created the element between our lookup and insert.
        if let Some(p) = HITS.get_ptr_mut(entry_id) {
            // SAFETY: as above.
            unsafe { *p += 1 };
        }
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
