use super::*;
use c2wall_model::wire::identity_to_wire;
use c2wall_model::Identity;

fn cfg() -> Rpz {
    toml::from_str::<super::super::config::RpzConfig>(
        "listen = \"127.0.0.1:5353\"\nallow_transfer = [\"127.0.0.1/32\"]\n\
         source_actions = { walled = \"redirect:garden.isp.example\" }",
    )
    .unwrap()
    .check()
    .unwrap()
}

fn key(name: &str) -> pb::EntryKey {
    identity_to_wire(&Identity {
        target: Target::Domain(name.parse().unwrap()),
        scope: None,
    })
}

fn upsert(name: &str, action: pb::Action, source: &str) -> pb::Entry {
    pb::Entry {
        key: Some(key(name)),
        action: action as i32,
        source: source.into(),
        ..Default::default()
    }
}

fn delta(prev: u64, v: u64, up: Vec<pb::Entry>, rm: &[&str]) -> Vec<u8> {
    pb::Delta {
        previous_version: prev,
        version: v,
        upserts: up,
        removals: rm.iter().map(|n| key(n)).collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn rr(owner: &str, target: Option<&str>) -> Rr {
    Rr {
        owner: owner.into(),
        target: target.map(str::to_string),
    }
}

#[test]
fn rpz_ip_owners_reverse_the_address_and_compress_zeros() {
    let o = |p: &str| rpz_ip_owner(&p.parse().unwrap());
    assert_eq!(o("192.0.2.0/24"), "24.0.2.0.192.rpz-ip");
    assert_eq!(o("198.51.100.7"), "32.7.100.51.198.rpz-ip");
    assert_eq!(o("2001:db8::/32"), "32.zz.db8.2001.rpz-ip");
    assert_eq!(o("2001:db8::1"), "128.1.zz.db8.2001.rpz-ip");
    assert_eq!(o("2001:db8:0:1:0:0:0:5"), "128.5.zz.1.0.db8.2001.rpz-ip");
    assert_eq!(o("2001:db8:1:2:3:4:5:6"), "128.6.5.4.3.2.1.db8.2001.rpz-ip");
}

#[test]
fn ip_triggers_hold_whole_prefixes_towards_the_cc_only_when_asked() {
    let off = cfg();
    let mut on = cfg();
    on.ip_triggers = true;
    let prefix = |p: &str, dir: pb::Direction, port: u32| pb::Entry {
        key: Some(pb::EntryKey {
            prefix: p.into(),
            protocol: if port > 0 {
                pb::Protocol::Tcp as i32
            } else {
                0
            },
            port,
            ..Default::default()
        }),
        direction: dir as i32,
        action: pb::Action::Drop as i32,
        source: "feed".into(),
        ..Default::default()
    };
    let d = delta(
        0,
        1,
        vec![
            prefix("192.0.2.0/24", pb::Direction::Both, 0),
            prefix("198.51.100.1", pb::Direction::From, 0),
            prefix("203.0.113.1", pb::Direction::To, 443),
        ],
        &[],
    );
    let mut z = Zone::new(&off, 0, vec![]);
    z.apply(&off, &d).unwrap();
    assert!(z.records(&off).is_empty(), "off by default");
    let mut z = Zone::new(&on, 0, vec![]);
    z.apply(&on, &d).unwrap();
    assert_eq!(z.records(&on), [rr("24.0.2.0.192.rpz-ip", None)]);
    z.apply(
        &on,
        &pb::Delta {
            previous_version: 1,
            version: 2,
            removals: vec![pb::EntryKey {
                prefix: "192.0.2.0/24".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .unwrap();
    assert!(z.records(&on).is_empty());
    assert_eq!(z.since(1).unwrap().0, [rr("24.0.2.0.192.rpz-ip", None)]);
}

#[test]
fn records_follow_action_subtree_and_source_policy() {
    let c = cfg();
    let mut z = Zone::new(&c, 0, vec![]);
    z.apply(
        &c,
        &delta(
            0,
            1,
            vec![
                upsert("*.evil.example", pb::Action::Drop, "feed"),
                upsert("watch.example", pb::Action::Monitor, "feed"),
                upsert("bad.example", pb::Action::Drop, "walled"),
            ],
            &[],
        ),
    )
    .unwrap();
    assert_eq!(
        z.records(&c),
        [
            rr("*.evil.example", None),
            rr("bad.example", Some("garden.isp.example")),
            rr("evil.example", None),
        ]
    );
    // Monitor to drop adds; a withdrawal deletes; one net step from 1.
    z.apply(
        &c,
        &delta(
            1,
            2,
            vec![upsert("watch.example", pb::Action::Drop, "feed")],
            &[],
        ),
    )
    .unwrap();
    z.apply(&c, &delta(2, 3, vec![], &["bad.example"])).unwrap();
    z.apply(&c, &delta(3, 4, vec![], &[])).unwrap();
    let (del, add) = z.since(1).unwrap();
    assert_eq!(del, [rr("bad.example", Some("garden.isp.example"))]);
    assert_eq!(add, [rr("watch.example", None)]);
    assert_eq!(z.since(4).unwrap(), (vec![], vec![]));
    assert_eq!(z.size(), z.records(&c).len(), "the size follows the deltas");
    assert_eq!(
        z.since(0).unwrap().1,
        z.records(&c),
        "from empty: everything added"
    );
    assert!(z.since(7).is_none(), "a serial the journal never had");
    // Re-listing what was withdrawn nets out.
    z.apply(
        &c,
        &delta(
            4,
            5,
            vec![upsert("bad.example", pb::Action::Drop, "walled")],
            &[],
        ),
    )
    .unwrap();
    let (del, add) = z.since(2).unwrap();
    assert_eq!((del.len(), add.len()), (0, 0), "{del:?} {add:?}");
    // A gap is an error (the caller reloads the zone).
    assert!(z.apply(&c, &delta(9, 10, vec![], &[])).is_err());
}
