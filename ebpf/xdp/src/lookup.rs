//! Rule lookup for one side of a packet, and the allowlist check.

use aya_ebpf::maps::lpm_trie::Key;
use c2wall_common::*;
use c2wall_xdp::parse::{Addr, Packet};

use crate::keys::slot_addr;
use crate::maps::{ALLOW_V4, ALLOW_V6, PORTS};
use crate::tables::{c2w_find_v4, c2w_find_v6, c2w_probe_v4, c2w_probe_v6, pack};

/// The meta word of the most specific slot that holds `addr` in rule set
/// `set` (0: none), probing only the levels in `possible` (from
/// [`possible`]) through the global lookups (see [`c2w_find_v4`]).
/// Called from the program's main frame, not from [`side_rule`], so the
/// deepest call chain stays within the 512-byte stack.
///
/// When the filter left only the full-length level (a listed host: most
/// of a list) and the stash holds nothing at that level, the level's one
/// probe is called directly, which spares the hit path the level walk's
/// call.
#[inline(always)]
pub fn find(cfg: &Config, addr: &Addr, family: u8, set: u32, possible: u32) -> u64 {
    let s = (set & 1) as usize;
    if family == FAMILY_V4 {
        let (n, host) = (cfg.v4_buckets[s], 1 << V4_HOST_IDX);
        if possible == host && n != 0 && cfg.stash_v4_levels[s] & host == 0 {
            let packed = pack(set, n, V4_HOST_IDX);
            return c2w_probe_v4(packed, cfg.table_seed[s], addr.v4() as u64);
        }
        c2w_find_v4(set as u64, addr.v4() as u64, possible as u64)
    } else {
        let (hi, lo) = addr.halves();
        let (n, host) = (cfg.v6_buckets[s], 1 << V6_HOST_IDX);
        if possible == host && n != 0 && cfg.stash_v6_levels[s] & host == 0 {
            let packed = pack(set, n, V6_HOST_IDX);
            return c2w_probe_v6(packed, cfg.table_seed[s], hi, lo);
        }
        c2w_find_v6(set as u64, hi, lo, possible as u64)
    }
}

/// The rule that decides for one side: the destination (`to_cc`) or the
/// source, given the slot [`find`] found for it (`meta`). The port map is
/// read (in a call of its own) only under a slot that has port rules.
#[inline(always)]
pub fn side_rule(pkt: &Packet, set: u32, meta: u64, to_cc: bool) -> Rule {
    let (action, counter) = if to_cc {
        meta_to(meta)
    } else {
        meta_from(meta)
    };
    // The entry id is looked up from the counter slot only for a sampled
    // event (verdict.rs).
    let rule = Rule {
        entry_id: 0,
        counter,
        action,
        _pad: [0; 3],
    };
    if meta & META_PORTS != 0 && pkt.has_ports {
        let p = port_rule(pkt, set, meta, to_cc);
        if p != 0 {
            return Rule {
                entry_id: 0,
                counter: p as u32,
                action: (p >> 32) as u8,
                _pad: [0; 3],
            };
        }
    }
    rule
}

/// The port rule under the slot of `meta` for the packet's protocol and
/// C&C-side port, as `counter | action << 32` (0: none). Not inlined: the
/// port key gets a frame of its own; a number, not a Rule, comes back so the
/// call needs no pointer to the caller's stack.
#[inline(never)]
fn port_rule(pkt: &Packet, set: u32, meta: u64, to_cc: bool) -> u64 {
    let (addr, port) = if to_cc {
        (&pkt.dst, pkt.dport)
    } else {
        (&pkt.src, pkt.sport)
    };
    let stride = if pkt.family == FAMILY_V4 {
        V4_STRIDE
    } else {
        V6_STRIDE
    };
    let Some(idx) = meta_level(meta) else {
        return 0;
    };
    let level = (idx * stride) as u8;
    let Some(ports) = PORTS.get(set) else {
        return 0;
    };
    let key = PortKey {
        addr: slot_addr(addr, pkt.family, level),
        level,
        family: pkt.family,
        proto: pkt.proto,
        _pad0: 0,
        port,
        _pad: [0; 2],
    };
    // SAFETY: NO_PREALLOC map, value copied out immediately.
    match unsafe { ports.get(key) } {
        Some(pv) => {
            let r = if to_cc { pv.to_cc } else { pv.from_cc };
            if r.action != ACTION_NONE {
                r.counter as u64 | ((r.action as u64) << 32)
            } else {
                0
            }
        }
        None => 0,
    }
}

/// Whether either address is in the protected allowlist; a family whose
/// allowlist is empty (`allow` bits of the config) costs nothing. Not
/// inlined: the trie keys get a frame of their own (stack, see sample()).
#[inline(never)]
pub fn allowlisted(pkt: &Packet, allow: u8) -> bool {
    if pkt.family == FAMILY_V4 {
        if allow & ALLOW_HAS_V4 == 0 {
            return false;
        }
        ALLOW_V4.get(Key::new(32, pkt.dst.v4_bytes())).is_some()
            || ALLOW_V4.get(Key::new(32, pkt.src.v4_bytes())).is_some()
    } else {
        if allow & ALLOW_HAS_V6 == 0 {
            return false;
        }
        ALLOW_V6.get(Key::new(128, pkt.dst.bytes())).is_some()
            || ALLOW_V6.get(Key::new(128, pkt.src.bytes())).is_some()
    }
}
