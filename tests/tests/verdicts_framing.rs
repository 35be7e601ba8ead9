//! Verdicts of the real program on crafted frames (BPF_PROG_TEST_RUN), through
//! both entry points: how headers are walked (VLAN tags, IPv6 extension
//! chains, fragments, IPv4 options) and that truncated, malformed and non-IP
//! frames pass.

use c2wall_common::*;
use c2wall_e2e::{
    packet::{arp_frame, Frame, V6Ext, L4, TPID_8021AD, TPID_8021Q},
    rig::{Hook, Rig, XDP_DROP, XDP_PASS},
};

const SUB4: &str = "198.51.100.10";
const SUB6: &str = "2001:db8:a::10";

fn counters(rig: &Rig) -> Vec<u64> {
    use c2wall_agent::dataplane::Dataplane;
    rig.engine.applier.dataplane().counters().unwrap()
}

c2wall_e2e::both_hooks!(
    vlan_tags,
    ipv6_extension_chains,
    fragments_match_address_entries_only,
    ipv4_options_are_skipped,
    truncated_headers_pass_at_every_offset,
    malformed_and_non_ip_pass,
);

fn vlan_tags(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.5\n2001:db8:b::5\n", "", MODE_ENFORCE);
    for tags in [
        vec![TPID_8021Q],
        vec![TPID_8021AD, TPID_8021Q],
        vec![TPID_8021Q, TPID_8021Q],
    ] {
        let mut f = Frame::new(SUB4, "203.0.113.5", L4::Tcp(1, 2));
        let mut g = Frame::new(SUB6, "2001:db8:b::5", L4::Udp(1, 2));
        for t in &tags {
            f = f.vlan(*t);
            g = g.vlan(*t);
        }
        assert_eq!(rig.run(&f.build()), XDP_DROP, "{tags:x?}");
        assert_eq!(rig.run(&g.build()), XDP_DROP, "{tags:x?}");
        let ok = Frame::new(SUB4, "203.0.113.6", L4::Tcp(1, 2));
        let ok = tags.iter().fold(ok, |f, t| f.vlan(*t));
        assert_eq!(rig.run(&ok.build()), XDP_PASS);
    }
    // A third tag is beyond what is walked: passed as non-IP, never dropped.
    let three = Frame::new(SUB4, "203.0.113.5", L4::Tcp(1, 2))
        .vlan(TPID_8021AD)
        .vlan(TPID_8021Q)
        .vlan(TPID_8021Q);
    let before = counters(&rig)[CNT_NON_IP as usize];
    assert_eq!(rig.run(&three.build()), XDP_PASS);
    assert_eq!(counters(&rig)[CNT_NON_IP as usize], before + 1);
}

fn ipv6_extension_chains(hook: Hook) {
    let rig = Rig::with_hook(hook, "2001:db8:b::5 tcp 443\n", "", MODE_ENFORCE);
    let chains: Vec<Vec<V6Ext>> = vec![
        vec![V6Ext::HopByHop],
        vec![V6Ext::HopByHop, V6Ext::Routing, V6Ext::DestOpts],
        vec![V6Ext::DestOpts, V6Ext::Fragment(0, true)],
        vec![
            V6Ext::HopByHop,
            V6Ext::DestOpts,
            V6Ext::Routing,
            V6Ext::Fragment(0, false),
            V6Ext::DestOpts,
        ],
    ];
    for chain in chains {
        let mk = |port| {
            chain
                .iter()
                .fold(
                    Frame::new(SUB6, "2001:db8:b::5", L4::Tcp(1, port)),
                    |f, e| f.ext(*e),
                )
                .build()
        };
        assert_eq!(rig.run(&mk(443)), XDP_DROP, "{chain:?}");
        assert_eq!(rig.run(&mk(444)), XDP_PASS, "{chain:?}");
    }
}

fn fragments_match_address_entries_only(hook: Hook) {
    let rig = Rig::with_hook(
        hook,
        "203.0.113.5 tcp 443\n203.0.113.6\n2001:db8:b::5 tcp 443\n2001:db8:b::6\n",
        "",
        MODE_ENFORCE,
    );
    // Non-first fragments: the bytes where ports would be are payload.
    let v4 = |dst| {
        Frame::new(SUB4, dst, L4::Tcp(1, 443))
            .v4_fragment(100, false)
            .build()
    };
    let v6 = |dst| {
        Frame::new(SUB6, dst, L4::Tcp(1, 443))
            .ext(V6Ext::Fragment(100, false))
            .build()
    };
    assert_eq!(
        rig.run(&v4("203.0.113.5")),
        XDP_PASS,
        "port entry, v4 fragment"
    );
    assert_eq!(
        rig.run(&v4("203.0.113.6")),
        XDP_DROP,
        "address entry, v4 fragment"
    );
    assert_eq!(
        rig.run(&v6("2001:db8:b::5")),
        XDP_PASS,
        "port entry, v6 fragment"
    );
    assert_eq!(
        rig.run(&v6("2001:db8:b::6")),
        XDP_DROP,
        "address entry, v6 fragment"
    );
    // First fragments carry the transport header.
    let first = Frame::new(SUB4, "203.0.113.5", L4::Tcp(1, 443))
        .v4_fragment(0, true)
        .build();
    assert_eq!(rig.run(&first), XDP_DROP);
    assert_eq!(counters(&rig)[CNT_FRAGMENT as usize], 4);
}

fn ipv4_options_are_skipped(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.5 udp 53\n", "", MODE_ENFORCE);
    for words in [1, 4, 10] {
        let f = Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 53)).v4_options(words);
        assert_eq!(rig.run(&f.build()), XDP_DROP, "{words} option words");
    }
}

fn truncated_headers_pass_at_every_offset(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.5\n2001:db8:b::5\n", "", MODE_ENFORCE);
    let frames = vec![
        Frame::new(SUB4, "203.0.113.5", L4::Tcp(1, 2)),
        Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 2))
            .vlan(TPID_8021AD)
            .vlan(TPID_8021Q),
        Frame::new(SUB4, "203.0.113.5", L4::Udp(1, 2)).v4_options(3),
        Frame::new(SUB6, "2001:db8:b::5", L4::Tcp(1, 2))
            .ext(V6Ext::HopByHop)
            .ext(V6Ext::Fragment(0, true)),
        Frame::new(SUB6, "2001:db8:b::5", L4::Udp(1, 2))
            .vlan(TPID_8021Q)
            .ext(V6Ext::Routing),
    ];
    let mut truncated = 0;
    for f in frames {
        let (full, hlen) = f.build_with_header_len();
        assert_eq!(rig.run(&full), XDP_DROP, "complete frame {f:?}");
        // The kernel's test harness refuses frames shorter than an Ethernet
        // header; at tc (an skb) also an IP frame cut inside its IP header.
        for cut in 14..hlen {
            let Some(verdict) = rig.try_run(&full[..cut]) else {
                assert!(
                    hook == Hook::Tc,
                    "{f:?} cut at {cut} refused by the harness"
                );
                continue;
            };
            assert_eq!(verdict, XDP_PASS, "{f:?} cut at {cut}");
            truncated += 1;
        }
    }
    // Every frame has bytes beyond its IP header to cut, so both hooks run
    // dozens of truncated frames.
    assert!(truncated > 50, "{truncated}");
    assert_eq!(counters(&rig)[CNT_PARSE_ERROR as usize], truncated);
}

fn malformed_and_non_ip_pass(hook: Hook) {
    let rig = Rig::with_hook(hook, "203.0.113.5\n", "", MODE_ENFORCE);
    assert_eq!(rig.run(&arp_frame()), XDP_PASS);
    let mut bad_version = Frame::new(SUB4, "203.0.113.5", L4::Icmp).build();
    bad_version[14] = 0x55;
    assert_eq!(rig.run(&bad_version), XDP_PASS);
    let mut bad_ihl = Frame::new(SUB4, "203.0.113.5", L4::Icmp).build();
    bad_ihl[14] = 0x44;
    assert_eq!(rig.run(&bad_ihl), XDP_PASS);
    let c = counters(&rig);
    assert_eq!(c[CNT_NON_IP as usize], 1);
    assert_eq!(c[CNT_PARSE_ERROR as usize], 2);
    // Other transports still match address entries.
    assert_eq!(
        rig.run(&Frame::new(SUB4, "203.0.113.5", L4::Raw(47)).build()),
        XDP_DROP
    );
}
