//! The program following DNS answers (issue 15, enforcement 2), driven by
//! BPF_PROG_TEST_RUN through both hooks: which responses reach the answer
//! ring buffer, byte for byte, and that none changes a verdict.

use aya::maps::RingBuf;
use c2wall_agent::dataplane::Dataplane;
use c2wall_agent::follow::answer;
use c2wall_agent::source::Snapshot;
use c2wall_common::*;
use c2wall_e2e::dnswire::{name, raw_question, response, Rr};
use c2wall_e2e::packet::{Frame, L4, TPID_8021Q};
use c2wall_e2e::rig::{Hook, Rig, XDP_DROP, XDP_PASS};
use c2wall_model::{Action, Direction, Entry, Target};

const RESOLVER: &str = "192.0.2.53";
const SUBSCRIBER: &str = "10.0.0.7";

fn entry(target: &str) -> Entry {
    let target = match target.parse() {
        Ok(p) => Target::Prefix(p),
        Err(_) => Target::Domain(target.parse().expect("domain")),
    };
    Entry {
        target,
        scope: None,
        action: Action::Drop,
        direction: Direction::Both,
    }
}

/// A rig enforcing `list` (prefixes and names), with its answer ring.
fn rig(hook: Hook, list: &[&str]) -> (Rig, RingBuf<aya::maps::MapData>) {
    let mut rig = Rig::with_hook(hook, "", "", MODE_ENFORCE);
    let snap = Snapshot {
        entries: list.iter().map(|t| entry(t)).collect(),
        ..Default::default()
    };
    rig.engine.sync(&snap).expect("sync");
    let ring = RingBuf::try_from(rig.ebpf.take_map(MAP_DNS_ANSWERS).expect("ring")).expect("rb");
    (rig, ring)
}

fn from_resolver(msg: &[u8]) -> Vec<u8> {
    Frame::new(RESOLVER, SUBSCRIBER, L4::Udp(53, 40000)).carrying(msg)
}

/// Everything the ring holds now.
fn drain(ring: &mut RingBuf<aya::maps::MapData>) -> Vec<DnsAnswer> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<DnsAnswer>());
        // SAFETY: the record is a DnsAnswer the program wrote (size checked).
        out.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const DnsAnswer) });
    }
    out
}

fn counter(rig: &Rig, idx: u32) -> u64 {
    let c = rig.engine.applier.dataplane().counters().expect("counters");
    c[idx as usize]
}

fn copied(a: &DnsAnswer) -> &[u8] {
    &a.message[..a.len as usize]
}

fn listed_names_are_copied_byte_for_byte(hook: Hook) {
    let (rig, mut ring) = rig(hook, &["evil.example", "*.bad.example"]);
    let cases = [
        ("evil.example", true),
        ("EVIL.Example", true),
        ("www.evil.example", false),
        ("bad.example", true),
        ("a.b.bad.example", true),
        ("notbad.example", false),
        ("example", false),
        ("good.example", false),
    ];
    for (q, listed) in cases {
        let msg = response(q, &[Rr::A([198, 51, 100, 7], 300)]);
        assert_eq!(rig.run(&from_resolver(&msg)), XDP_PASS, "{q}");
        let got = drain(&mut ring);
        if listed {
            assert_eq!(got.len(), 1, "{q} listed: one copy");
            let a = &got[0];
            assert_eq!(copied(a), &msg[..], "{q}: the message as sent");
            assert_eq!(a.wire_len as usize, msg.len());
            assert_eq!(a.family, FAMILY_V4);
            assert_eq!(&a.resolver[..4], &[192, 0, 2, 53]);
            assert_eq!(&a.subscriber[..4], &[10, 0, 0, 7]);
        } else {
            assert!(got.is_empty(), "{q} is not listed: nothing copied");
        }
    }
    assert_eq!(counter(&rig, CNT_DNS_RESPONSES), cases.len() as u64);
    assert_eq!(counter(&rig, CNT_DNS_FOLLOWED), 4);
    assert_eq!(counter(&rig, CNT_DNS_UNPARSED), 0);
}

fn answers_parse_from_the_copy(hook: Hook) {
    let (rig, mut ring) = rig(hook, &["*.evil.example"]);
    let msg = response(
        "c2.evil.example",
        &[
            Rr::A([198, 51, 100, 1], 300),
            Rr::A([198, 51, 100, 2], 60),
            Rr::CnameThenA("cdn.elsewhere.example", 30, [203, 0, 113, 9], 600),
            Rr::Aaaa(
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                120,
            ),
        ],
    );
    // Over IPv6 and behind a VLAN tag as well.
    let frames = [
        from_resolver(&msg),
        Frame::new("2001:db8::53", "2001:db8::7", L4::Udp(53, 4000))
            .vlan(TPID_8021Q)
            .carrying(&msg),
    ];
    for f in frames {
        assert_eq!(rig.run(&f), XDP_PASS);
        let got = drain(&mut ring);
        assert_eq!(got.len(), 1);
        let a = answer::parse(copied(&got[0])).expect("the copy parses");
        assert_eq!(a.name.as_str(), "c2.evil.example");
        let mut addrs: Vec<String> = a.addrs.iter().map(|(ip, t)| format!("{ip}/{t}")).collect();
        addrs.sort();
        assert_eq!(
            addrs,
            [
                "198.51.100.1/300",
                "198.51.100.2/60",
                "2001:db8::1/120",
                // Through the alias: the shorter of the two TTLs.
                "203.0.113.9/30",
            ]
        );
    }
}

fn malformed_questions_are_never_followed(hook: Hook) {
    let (rig, mut ring) = rig(hook, &["*.evil.example"]);
    let mut deep = String::new();
    for _ in 0..(DNS_MAX_LABELS + 1) {
        deep.push_str("a.");
    }
    deep.push_str("evil.example");
    let long_labels = format!(
        "{}.{}.{}.evil.example",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    let mut past_end = name("x.evil.example");
    past_end[0] = 60;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // A label length pointing past the packet.
        ("past the end", raw_question(&past_end)[..20].to_vec()),
        // A question name that is a compression pointer (to itself: a loop).
        ("pointer", raw_question(&[0xc0, 12])),
        ("label over 63", raw_question(&[64, b'a', 0])),
        (
            "no root label",
            raw_question(&name("evil.example")[..13])[..25].to_vec(),
        ),
        (
            "header only",
            vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        ("short header", vec![0x12, 0x34, 0x81]),
        (
            "deeper than walked",
            response(&deep, &[Rr::A([198, 51, 100, 1], 60)]),
        ),
    ];
    for (what, msg) in &cases {
        assert_eq!(rig.run(&from_resolver(msg)), XDP_PASS, "{what}");
        assert!(drain(&mut ring).is_empty(), "{what}: nothing copied");
    }
    assert_eq!(counter(&rig, CNT_DNS_FOLLOWED), 0);
    assert_eq!(counter(&rig, CNT_DNS_UNPARSED), cases.len() as u64);
    // A 255-byte name is walked in full (four labels).
    let msg = response(&long_labels, &[Rr::A([198, 51, 100, 1], 60)]);
    assert_eq!(rig.run(&from_resolver(&msg)), XDP_PASS);
    assert_eq!(
        drain(&mut ring).len(),
        1,
        "a 255-byte name under a listed one"
    );
}

fn following_never_changes_a_verdict(hook: Hook) {
    // The resolver itself is listed: its response still drops, and is
    // still followed.
    let (rig, mut ring) = rig(hook, &["evil.example", "192.0.2.53/32"]);
    let msg = response("evil.example", &[Rr::A([198, 51, 100, 7], 300)]);
    assert_eq!(rig.run(&from_resolver(&msg)), XDP_DROP);
    assert_eq!(drain(&mut ring).len(), 1);
    // Not from port 53: not a response, not looked at.
    let other = Frame::new(RESOLVER, SUBSCRIBER, L4::Udp(5353, 53)).carrying(&msg);
    let before = counter(&rig, CNT_DNS_RESPONSES);
    assert_eq!(rig.run(&other), XDP_DROP);
    assert_eq!(counter(&rig, CNT_DNS_RESPONSES), before);
    assert!(drain(&mut ring).is_empty());
}

fn nothing_is_looked_at_without_listed_names(hook: Hook) {
    let (mut rig, mut ring) = rig(hook, &["198.51.100.0/24"]);
    let msg = response("evil.example", &[Rr::A([198, 51, 100, 7], 300)]);
    assert_eq!(rig.run(&from_resolver(&msg)), XDP_PASS);
    assert_eq!(counter(&rig, CNT_DNS_RESPONSES), 0);
    // Listed, then withdrawn: followed, then not looked at again.
    let snap = |list: &[&str]| Snapshot {
        entries: list.iter().map(|t| entry(t)).collect(),
        ..Default::default()
    };
    rig.engine.sync(&snap(&["evil.example"])).expect("sync");
    rig.run(&from_resolver(&msg));
    assert_eq!(drain(&mut ring).len(), 1);
    rig.engine.sync(&snap(&[])).expect("sync");
    rig.run(&from_resolver(&msg));
    assert!(drain(&mut ring).is_empty());
    assert_eq!(counter(&rig, CNT_DNS_RESPONSES), 1);
    assert!(rig
        .engine
        .applier
        .dataplane()
        .names()
        .expect("names")
        .is_empty());
}

c2wall_e2e::both_hooks!(
    listed_names_are_copied_byte_for_byte,
    answers_parse_from_the_copy,
    malformed_questions_are_never_followed,
    following_never_changes_a_verdict,
    nothing_is_looked_at_without_listed_names,
);
