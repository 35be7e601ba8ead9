//! The verdict logic shared by the XDP and tc entry points: parse, probe the
//! destination and the source in the active rule set (one hash probe per
//! expansion level in use), take the stronger match, let the protected
//! allowlist veto it, count, sample.

use aya_ebpf::helpers::{
    bpf_get_smp_processor_id, bpf_ktime_get_coarse_ns, generated::bpf_jiffies64,
};
use c2wall_common::*;
use c2wall_xdp::parse::{parse, Frame, Packet, Parsed};

use crate::counters::{count, count_packet};
use crate::dns;
use crate::filter::possible;
use crate::lookup::{allowlisted, find, side_rule};
use crate::maps::{CONFIG, EVENTS, HITS, IFSLOT, SAMPLER};

/// [`drop_frame`]'s answer: drop the frame.
pub const DROP: u32 = 1;
/// [`drop_frame`]'s answer: a DNS response to follow (see dns.rs).
pub const FOLLOW: u32 = 2;

/// The verdict for one frame arriving on `ifindex`: [`DROP`] and
/// [`FOLLOW`] bits. Both hooks (XDP and tc) call this, so they share maps,
/// counters and behaviour.
#[inline(always)]
pub fn drop_frame(frame: Frame, ifindex: u32) -> u32 {
    let len = (frame.end - frame.start) as u64;
    // This interface's block of counters.
    let base = match IFSLOT.get(ifindex % IFINDEX_BUCKETS) {
        Some(&slot) if slot < IFACE_SLOTS => slot * COUNTER_SLOTS,
        _ => 0,
    };
    let pkt = match parse(&frame) {
        Parsed::Ip(p) => p,
        Parsed::NonIp => {
            count(base + CNT_NON_IP, 1);
            return 0;
        }
        Parsed::Malformed => {
            count(base + CNT_PARSE_ERROR, 1);
            return 0;
        }
    };
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    let mode = cfg.mode;
    if mode != MODE_ENFORCE && mode != MODE_MONITOR {
        count(base + CNT_MODE_OFF, 1);
        return 0;
    }
    if pkt.fragment {
        count(base + CNT_FRAGMENT, 1);
    }
    // A DNS response is looked at only while some name is listed; the
    // response itself is judged like any other packet.
    let mut follow = 0;
    if cfg.follow != 0 && dns::is_response(&pkt) {
        count(base + CNT_DNS_RESPONSES, 1);
        if dns::note(&frame, &pkt, base) {
            follow = FOLLOW;
        }
    }
    let fam = if pkt.family == FAMILY_V4 {
        FAM_IDX_V4
    } else {
        FAM_IDX_V6
    };
    let set = cfg.active_set & 1;
    // Most packets match nothing, and the filter says so for both sides
    // before any node map is read; a side it rules out is not looked up, and
    // a side it does not is looked up at the levels it left.
    let (dst_levels, src_levels) = possible(&pkt, set);
    if dst_levels == 0 && src_levels == 0 {
        count_verdict(base, VERDICT_PASS, DIR_TO_CC, fam, len);
        return follow;
    }
    let to = if dst_levels == 0 {
        Rule::default()
    } else {
        side_rule(
            &pkt,
            set,
            find(cfg, &pkt.dst, pkt.family, set, dst_levels),
            true,
        )
    };
    let from = if src_levels == 0 {
        Rule::default()
    } else {
        side_rule(
            &pkt,
            set,
            find(cfg, &pkt.src, pkt.family, set, src_levels),
            false,
        )
    };
    // The stronger action decides; on a tie the destination side is reported.
    let (rule, dir) = if to.action >= from.action {
        (to, DIR_TO_CC)
    } else {
        (from, DIR_FROM_CC)
    };
    if rule.action == ACTION_NONE {
        count_verdict(base, VERDICT_PASS, DIR_TO_CC, fam, len);
        return follow;
    }
    // Checked only once something matched: the allowlist is small, but the miss
    // path is the hot one and must not pay for it.
    if cfg.allow != 0 && allowlisted(&pkt, cfg.allow) {
        count_verdict(base, VERDICT_ALLOWLISTED, dir, fam, len);
        return follow;
    }
    hit(cfg, rule.counter);
    let verdict = if rule.action == ACTION_DROP && mode == MODE_ENFORCE {
        VERDICT_DROP
    } else {
        VERDICT_WOULD_DROP
    };
    count_verdict(base, verdict, dir, fam, len);
    if cfg.sample_budget != 0 && take_sample(cfg) {
        sample(&pkt, rule.counter, verdict | (dir << 8), ifindex);
    }
    if verdict == VERDICT_DROP {
        follow | DROP
    } else {
        follow
    }
}

/// Whether this CPU's budget for the current second allows one more drop
/// event (and spends it); counts a suppressed one in the same per-CPU
/// value. Inline: after a flood spends the budget, a hit pays for no call
/// and touches no counter beyond this value.
#[inline(always)]
fn take_sample(cfg: &Config) -> bool {
    let Some(st) = SAMPLER.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it while we run.
    let st = unsafe { &mut *st };
    // Jiffies: a read of one variable, where even the coarse clock cost some
    // 20 ns per sampled hit (c2wall-bench); a tick's resolution is plenty
    // for a one-second budget window.
    let now = unsafe { bpf_jiffies64() };
    let window = if cfg.sample_window == 0 {
        DEFAULT_SAMPLE_WINDOW
    } else {
        cfg.sample_window
    };
    if now.wrapping_sub(st.window_start) >= window as u64 {
        st.window_start = now;
        st.used = 0;
    }
    if st.used >= cfg.sample_budget {
        st.suppressed += 1;
        return false;
    }
    st.used += 1;
    true
}

/// Writes a drop event (its budget taken by [`take_sample`]) and counts it
/// written, or lost when the ring had no room. Never waits. Not inlined: the event is
/// built on its own stack frame, which keeps the program's deepest call
/// chain within the 512 bytes every kernel allows. Five arguments at most
/// (a BPF call's limit), none through the caller's stack: the verdict and
/// direction share one.
#[inline(never)]
fn sample(pkt: &Packet, counter: u32, verdict_dir: u32, ifindex: u32) {
    let (verdict, dir) = (verdict_dir & 0xff, verdict_dir >> 8);
    let to = dir == DIR_TO_CC;
    let (subscriber, cc, subscriber_port, cc_port) = if to {
        (pkt.src, pkt.dst, pkt.sport, pkt.dport)
    } else {
        (pkt.dst, pkt.src, pkt.dport, pkt.sport)
    };
    let ev = DropEvent {
        ts_ns: unsafe { bpf_ktime_get_coarse_ns() },
        entry_id: entry_of(counter),
        ifindex,
        verdict: verdict as u8,
        direction: dir as u8,
        family: pkt.family,
        protocol: pkt.proto,
        subscriber_port: if pkt.has_ports {
            subscriber_port
        } else {
            [0; 2]
        },
        cc_port: if pkt.has_ports { cc_port } else { [0; 2] },
        subscriber: subscriber.bytes(),
        cc: cc.bytes(),
    };
    let written = EVENTS.output::<DropEvent>(&ev, 0).is_ok();
    if let Some(st) = SAMPLER.get_ptr_mut(0) {
        // SAFETY: per-CPU value, as in take_sample.
        let st = unsafe { &mut *st };
        if written {
            st.written += 1;
        } else {
            st.lost += 1;
        }
    }
}

#[inline(always)]
fn count_verdict(base: u32, verdict: u32, dir: u32, fam: u32, len: u64) {
    count_packet(base + verdict_counter(verdict, dir, fam, UNIT_PACKETS), len);
}

/// Counts a hit of the entry whose counter slot is `counter`, in this CPU's
/// part of the hit array (layout: c2wall_common::table) that `cfg` names,
/// sized as `cfg` says (see `Config::hit_index`).
#[inline(always)]
fn hit(cfg: &Config, counter: u32) {
    let i = cfg.hit_index & 1;
    let slots = cfg.hit_slots[i as usize] as u64;
    if counter as u64 >= slots {
        return;
    }
    let Some(hits) = HITS.get(i) else {
        return;
    };
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64;
    let idx = hit_counter_index(slots, cpu, counter);
    if idx > u32::MAX as u64 {
        return;
    }
    if let Some(p) = hits.get_ptr_mut(idx as u32) {
        // SAFETY: this CPU's counter; only this CPU writes it, and the
        // program is not preempted or migrated while it runs.
        unsafe { *p += 1 };
    }
}

/// The entry id of counter slot `counter` (0 if unknown): only a sampled
/// event names it, so the hit path does not carry it.
#[inline(always)]
fn entry_of(counter: u32) -> u32 {
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    let i = cfg.hit_index & 1;
    if counter >= cfg.hit_slots[i as usize] {
        return 0;
    }
    let Some(hits) = HITS.get(i) else {
        return 0;
    };
    let (idx, shift) = hit_id_index(counter);
    match hits.get(idx as u32) {
        Some(&w) => (w >> shift) as u32,
        None => 0,
    }
}
