//! Verdicts of the real program on crafted packets (BPF_PROG_TEST_RUN), through
//! both entry points: which entries match (prefix edges, longest prefix, ports,
//! directions), the allowlist, the modes and the hit counters. How headers are
//! walked is in verdicts_framing.rs.

use c2wall_common::*;
use c2wall_e2e::{
    packet::{Frame, L4},
    rig::{Hook, Rig, XDP_DROP, XDP_PASS},
};

const SUB4: &str = "198.51.100.10";
const SUB6: &str = "2001:db8:a::10";

fn counters(rig: &Rig) -> Vec<u64> {
    use c2wall_agent::dataplane::Dataplane;
    rig.engine.applier.dataplane().counters().unwrap()
}

c2wall_e2e::both_hooks!(
    both_directions_and_prefix_edges_ipv4,
    both_directions_and_prefix_edges_ipv6,
    longest_prefix_wins_in_both_senses,
    port_scoped_entries,
    direction_restricted_entries,
    allowlist_wins_over_blocklist,
    global_modes,
    per_entry_hits_and_updates_without_reload,
    hit_counts_survive_the_hit_array_growing_and_shrinking,
);

fn both_directions_and_prefix_edges_ipv4(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.64/27\n", "", MODE_ENFORCE);
    let to = |dst: &str| rig.run(&Frame::new(SUB4, dst, L4::Udp(40000, 53)).build());
    let from = |src: &str| rig.run(&Frame::new(src, SUB4, L4::Udp(53, 40000)).build());
    for inside in ["203.0.113.64", "203.0.113.95", "203.0.113.77"] {
        assert_eq!(to(inside), XDP_DROP, "to {inside}");
        assert_eq!(from(inside), XDP_DROP, "from {inside}");
    }
    for outside in ["203.0.113.63", "203.0.113.96", "198.51.100.1"] {
        assert_eq!(to(outside), XDP_PASS, "to {outside}");
        assert_eq!(from(outside), XDP_PASS, "from {outside}");
    }
    let c = counters(&rig);
    let n = |v, d| c[verdict_counter(v, d, FAM_IDX_V4, UNIT_PACKETS) as usize];
    assert_eq!(n(VERDICT_DROP, DIR_TO_CC), 3);
    assert_eq!(n(VERDICT_DROP, DIR_FROM_CC), 3);
    assert_eq!(n(VERDICT_PASS, DIR_TO_CC), 6);
}

fn both_directions_and_prefix_edges_ipv6(hook: Hook) {
    let rig = Rig::with_hook(hook, "2001:db8:b::/61\n2001:db8:c::7\n", "", MODE_ENFORCE);
    let to = |dst: &str| rig.run(&Frame::new(SUB6, dst, L4::Tcp(40000, 443)).build());
    let from = |src: &str| rig.run(&Frame::new(src, SUB6, L4::Tcp(443, 40000)).build());
    for inside in [
        "2001:db8:b::",
        "2001:db8:b:7:ffff:ffff:ffff:ffff",
        "2001:db8:c::7",
    ] {
        assert_eq!(to(inside), XDP_DROP, "to {inside}");
        assert_eq!(from(inside), XDP_DROP, "from {inside}");
    }
    for outside in [
        "2001:db8:a:ffff:ffff:ffff:ffff:ffff",
        "2001:db8:b:8::",
        "2001:db8:c::6",
        "2001:db8:c::8",
    ] {
        assert_eq!(to(outside), XDP_PASS, "to {outside}");
        assert_eq!(from(outside), XDP_PASS, "from {outside}");
    }
    let c = counters(&rig);
    assert_eq!(
        c[verdict_counter(VERDICT_DROP, DIR_FROM_CC, FAM_IDX_V6, UNIT_PACKETS) as usize],
        3
    );
}

fn longest_prefix_wins_in_both_senses(hook: Hook) {
    let list = "203.0.113.0/24 monitor\n203.0.113.128/25 drop\n203.0.113.200 monitor\n\
                10.0.0.0/8\n10.1.0.0/16 monitor\n10.1.2.0/23\n10.1.2.3 monitor\n";
    let rig = Rig::with_hook(hook, list, "", MODE_ENFORCE);
    let to = |dst: &str| rig.run(&Frame::new(SUB4, dst, L4::Icmp).build());
    assert_eq!(to("203.0.113.1"), XDP_PASS, "/24 monitor");
    assert_eq!(to("203.0.113.129"), XDP_DROP, "/25 drop");
    assert_eq!(to("203.0.113.200"), XDP_PASS, "/32 monitor inside /25 drop");
    assert_eq!(to("10.200.0.1"), XDP_DROP, "/8");
    assert_eq!(to("10.1.9.9"), XDP_PASS, "/16 monitor in /8");
    assert_eq!(to("10.1.3.255"), XDP_DROP, "/23 in /16");
    assert_eq!(to("10.1.2.3"), XDP_PASS, "/32 monitor in /23");
    let c = counters(&rig);
    assert_eq!(
        c[verdict_counter(VERDICT_WOULD_DROP, DIR_TO_CC, FAM_IDX_V4, UNIT_PACKETS) as usize],
        4
    );
}

fn port_scoped_entries(hook: Hook) {
    let list = "203.0.113.5 tcp 443\n203.0.113.0/24 udp 53 monitor\n2001:db8:b::5 udp 8080\n";
    let rig = Rig::with_hook(hook, list, "", MODE_ENFORCE);
    let run = |f: Frame| rig.run(&f.build());
    assert_eq!(
        run(Frame::new(SUB4, "203.0.113.5", L4::Tcp(40000, 443))),
        XDP_DROP,
        "right port"
    );
    assert_eq!(
        run(Frame::new(SUB4, "203.0.113.5", L4::Tcp(40000, 444))),
        XDP_PASS,
        "wrong port"
    );
    assert_eq!(
        run(Frame::new(SUB4, "203.0.113.5", L4::Udp(40000, 443))),
        XDP_PASS,
        "wrong proto"
    );
    assert_eq!(
        run(Frame::new(SUB4, "203.0.113.5", L4::Icmp)),
        XDP_PASS,
        "no ports"
    );
    // From C&C: the C&C side's port is the source port.
    assert_eq!(
        run(Frame::new("203.0.113.5", SUB4, L4::Tcp(443, 40000))),
        XDP_DROP
    );
    assert_eq!(
        run(Frame::new("203.0.113.5", SUB4, L4::Tcp(40000, 443))),
        XDP_PASS
    );
    // The /32 tcp/443 entry does not hide the /24 udp/53 one for other ports.
    assert_eq!(
        run(Frame::new(SUB4, "203.0.113.5", L4::Udp(40000, 53))),
        XDP_PASS
    );
    let c = counters(&rig);
    assert_eq!(
        c[verdict_counter(VERDICT_WOULD_DROP, DIR_TO_CC, FAM_IDX_V4, UNIT_PACKETS) as usize],
        1,
        "udp/53 to the /24 is a would-drop"
    );
    assert_eq!(
        run(Frame::new(SUB6, "2001:db8:b::5", L4::Udp(1, 8080))),
        XDP_DROP
    );
    assert_eq!(
        run(Frame::new(SUB6, "2001:db8:b::5", L4::Tcp(1, 8080))),
        XDP_PASS
    );
}

fn direction_restricted_entries(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.5 to\n203.0.113.6 from\n", "", MODE_ENFORCE);
    let run = |s: &str, d: &str| rig.run(&Frame::new(s, d, L4::Udp(1, 2)).build());
    assert_eq!(run(SUB4, "203.0.113.5"), XDP_DROP);
    assert_eq!(run("203.0.113.5", SUB4), XDP_PASS);
    assert_eq!(run("203.0.113.6", SUB4), XDP_DROP);
    assert_eq!(run(SUB4, "203.0.113.6"), XDP_PASS);
}

fn allowlist_wins_over_blocklist(hook: Hook) {
    let rig = Rig::with_hook(
        hook,
        "203.0.113.0/24\n2001:db8:b::/48\n",
        "203.0.113.53\n198.51.100.0/30\n2001:db8:b:1::/64\n",
        MODE_ENFORCE,
    );
    let run = |s: &str, d: &str| rig.run(&Frame::new(s, d, L4::Udp(1, 53)).build());
    assert_eq!(
        run(SUB4, "203.0.113.53"),
        XDP_PASS,
        "allowlisted destination"
    );
    assert_eq!(run(SUB4, "203.0.113.54"), XDP_DROP);
    assert_eq!(
        run("198.51.100.3", "203.0.113.54"),
        XDP_PASS,
        "allowlisted source"
    );
    assert_eq!(run("2001:db8:b:1::9", SUB6), XDP_PASS);
    assert_eq!(run("2001:db8:b:2::9", SUB6), XDP_DROP);
    let c = counters(&rig);
    let allowed: u64 = [FAM_IDX_V4, FAM_IDX_V6]
        .iter()
        .flat_map(|f| [DIR_TO_CC, DIR_FROM_CC].map(|d| (d, *f)))
        .map(|(d, f)| c[verdict_counter(VERDICT_ALLOWLISTED, d, f, UNIT_PACKETS) as usize])
        .sum();
    assert_eq!(allowed, 3);
}

fn global_modes(hook: Hook) {
    let mut rig = Rig::with_hook(hook, "203.0.113.5\n203.0.113.6 monitor\n", "", MODE_ENFORCE);
    let drop_pkt = Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 2)).build();
    let mon_pkt = Frame::new(SUB4, "203.0.113.6", L4::Udp(1, 2)).build();
    assert_eq!(rig.run(&drop_pkt), XDP_DROP);
    assert_eq!(rig.run(&mon_pkt), XDP_PASS);
    rig.engine.applier.set_mode(MODE_MONITOR).unwrap();
    assert_eq!(rig.run(&drop_pkt), XDP_PASS, "monitor mode drops nothing");
    rig.engine.applier.set_mode(MODE_OFF).unwrap();
    assert_eq!(rig.run(&drop_pkt), XDP_PASS);
    rig.engine.applier.set_mode(MODE_ENFORCE).unwrap();
    assert_eq!(
        rig.run(&drop_pkt),
        XDP_DROP,
        "back to enforce without reload"
    );
    let c = counters(&rig);
    let wd = c[verdict_counter(VERDICT_WOULD_DROP, DIR_TO_CC, FAM_IDX_V4, UNIT_PACKETS) as usize];
    assert_eq!(wd, 2, "monitor entry once, drop entry in monitor mode once");
    assert_eq!(c[CNT_MODE_OFF as usize], 1);
    let bytes = c[verdict_counter(VERDICT_DROP, DIR_TO_CC, FAM_IDX_V4, UNIT_BYTES) as usize];
    assert_eq!(bytes, 2 * drop_pkt.len() as u64);
}

fn per_entry_hits_and_updates_without_reload(hook: Hook) {
    use c2wall_agent::dataplane::Dataplane;
    let mut rig = Rig::with_hook(hook, "203.0.113.5\n", "", MODE_ENFORCE);
    let p5 = Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 2)).build();
    let p7 = Frame::new(SUB4, "203.0.113.7", L4::Udp(1, 2)).build();
    for _ in 0..3 {
        assert_eq!(rig.run(&p5), XDP_DROP);
    }
    let hits = rig.engine.applier.dataplane().hits().unwrap();
    assert_eq!(hits.values().copied().collect::<Vec<_>>(), vec![3]);
    rig.load("203.0.113.5\n203.0.113.7\n", "");
    assert_eq!(rig.run(&p7), XDP_DROP, "added entry applies");
    let hits = rig.engine.applier.dataplane().hits().unwrap();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.values().any(|h| *h == 3),
        "hits of the kept entry survive: {hits:?}"
    );
    rig.load("203.0.113.7\n", "");
    assert_eq!(rig.run(&p5), XDP_PASS, "withdrawn entry stops matching");
    assert_eq!(rig.engine.applier.dataplane().hits().unwrap().len(), 1);
}

/// The hit array is resized into the other slot of its outer map and the
/// config flipped to it (Config::hit_index): no count is lost either way,
/// and the old array is released once packets are past it.
fn hit_counts_survive_the_hit_array_growing_and_shrinking(hook: Hook) {
    use c2wall_agent::dataplane::Dataplane;
    let mut rig = Rig::with_hook(hook, "203.0.113.5\n", "", MODE_ENFORCE);
    let p5 = Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 2)).build();
    let config = |rig: &Rig| rig.engine.applier.dataplane().read_config().unwrap();
    let total = |rig: &Rig| -> u64 {
        rig.engine
            .applier
            .dataplane()
            .hits()
            .unwrap()
            .values()
            .sum()
    };
    let first = config(&rig);
    let small = first.hit_slots[(first.hit_index & 1) as usize];
    assert!(
        small > 0,
        "the array packets count in has a size: {first:?}"
    );
    for _ in 0..3 {
        assert_eq!(rig.run(&p5), XDP_DROP);
    }
    // Twice as many entries as the array has slots.
    let many: String = (0..2 * small)
        .map(|i| format!("10.{}.{}.1\n", (i >> 8) & 255, i & 255))
        .collect();
    rig.load(&format!("203.0.113.5\n{many}"), "");
    let grown = config(&rig);
    let big = grown.hit_slots[(grown.hit_index & 1) as usize];
    assert_ne!(
        grown.hit_index, first.hit_index,
        "a grown array goes into the other slot"
    );
    assert!(big > 2 * small, "{big} slots for {} entries", 2 * small + 1);
    assert_eq!(rig.run(&p5), XDP_DROP);
    assert_eq!(
        total(&rig),
        4,
        "3 hits counted in the old array and 1 in the new"
    );
    rig.load("203.0.113.5\n", "");
    let shrunk = config(&rig);
    assert_ne!(
        shrunk.hit_index, grown.hit_index,
        "a shrunk array goes into the other slot"
    );
    assert_eq!(shrunk.hit_slots[(shrunk.hit_index & 1) as usize], small);
    assert_eq!(rig.run(&p5), XDP_DROP);
    // Past the grace period, a read folds in and releases the old array.
    std::thread::sleep(c2wall_agent::dataplane::GRACE * 2);
    assert_eq!(total(&rig), 5, "and 1 more after shrinking");
    let after = config(&rig);
    assert_eq!(
        after.hit_slots[(1 - (after.hit_index & 1)) as usize],
        0,
        "the old array is released: {after:?}"
    );
}
