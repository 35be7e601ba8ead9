//! The id table's assignment, persistence and naming.

use super::*;
use c2wall_model::{Action, Direction};
use std::fs;

fn entry(s: &str) -> Entry {
    Entry {
        target: s.parse().unwrap(),
        scope: None,
        action: Action::Drop,
        direction: Direction::Both,
    }
}

fn keyed(a: &Assigned) -> Vec<(IdKey, u32)> {
    a.rows.iter().map(|r| (r.key, r.id)).collect()
}

#[test]
fn ids_are_stable_never_reused_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("c2wall-ids-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids");
    let mut ids = Ids::new();
    let (first, second) = (
        [entry("192.0.2.1"), entry("192.0.2.2")],
        [entry("192.0.2.3"), entry("192.0.2.2")],
    );
    let a = ids.assign(&first, std::iter::empty());
    ids.settle(&a);
    let b = ids.assign(&second, keyed(&a).into_iter());
    ids.settle(&b);
    assert_eq!(a.rows[1].id, b.rows[0].id, "a kept entry keeps its id");
    assert_eq!(b.gone, vec![a.rows[0].id]);
    assert!(b.rows[1].id > a.rows[1].id, "a new entry gets a fresh id");
    ids.save(&path, keyed(&b).into_iter()).unwrap();
    let again = Ids::load(&path).unwrap();
    assert_eq!(again.loaded().collect::<Vec<_>>(), keyed(&b));
    let third = [entry("192.0.2.4"), entry("192.0.2.3")];
    let c = again.assign(&third, again.loaded());
    assert_eq!(c.rows[0].id, b.rows[1].id);
    assert!(c.rows[1].id > b.rows[1].id);
    assert_eq!(c.gone, vec![b.rows[0].id]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn packed_keys_sort_as_the_keys_do() {
    let scoped = |p: &str, proto: &str, port: &str| {
        IdKey::of(
            &Entry {
                scope: Some(PortScope::parse(proto, port).unwrap()),
                ..entry(p)
            }
            .identity(),
        )
        .unwrap()
    };
    let plain = |p: &str| IdKey::of(&entry(p).identity()).unwrap();
    let mut keys = vec![
        plain("2001:db8::/32"),
        plain("255.255.255.255"),
        plain("10.0.0.0/8"),
        scoped("10.0.0.0/8", "udp", "53"),
        scoped("10.0.0.0/8", "tcp", "443"),
        scoped("10.0.0.0/8", "tcp", "80"),
        plain("10.0.0.0/9"),
        plain("::/0"),
        plain("0.0.0.0/0"),
        scoped("2001:db8::1", "tcp", "65535"),
        plain("2001:db8::1"),
    ];
    let mut by_packed = keys.clone();
    keys.sort();
    by_packed.sort_by_key(|k| {
        let (bits, tail) = k.packed();
        (tail >> 31, bits, tail)
    });
    assert_eq!(by_packed, keys);
    for k in keys {
        let (bits, tail) = k.packed();
        assert_eq!(IdKey::unpack(bits, tail), k);
    }
}

#[test]
fn a_repeated_identity_takes_one_id_and_its_later_entry() {
    let mut later = entry("192.0.2.1");
    later.action = Action::Monitor;
    let list = [entry("192.0.2.1"), entry("192.0.2.0/24"), later.clone()];
    let a = Ids::new().assign(&list, std::iter::empty());
    assert_eq!(a.rows.len(), 2);
    assert_eq!(a.rows[1].entry(), later);
    assert_ne!(a.rows[0].id, a.rows[1].id);
}

#[test]
fn port_scoped_keys_follow_their_prefix_in_protocol_and_port_order() {
    let scoped = |p: &str, proto: &str, port: &str| Entry {
        scope: Some(PortScope::parse(proto, port).unwrap()),
        ..entry(p)
    };
    let list = [
        scoped("192.0.2.1", "udp", "53"),
        scoped("192.0.2.1", "tcp", "443"),
        entry("192.0.2.1"),
        scoped("192.0.2.1", "tcp", "80"),
    ];
    let a = Ids::new().assign(&list, std::iter::empty());
    let keys = keyed(&a);
    let scopes: Vec<_> = keys
        .iter()
        .map(|(k, _)| k.scope.map(|s| (s.protocol.number(), s.port)))
        .collect();
    assert_eq!(
        scopes,
        [None, Some((6, 80)), Some((6, 443)), Some((17, 53))]
    );
    let named = name(keys.iter().copied(), [keys[2].1, 999]);
    assert_eq!(named.len(), 1);
    assert_eq!(named[&keys[2].1], list[1].identity());
}

#[test]
fn the_id_file_writes_each_line_as_the_identity_displays() {
    let dir = std::env::temp_dir().join(format!("c2wall-ids-lines-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids");
    let keys: Vec<IdKey> = [
        "0.0.0.0/0",
        "255.255.255.255",
        "10.1.2.0/24",
        "2001:db8::/32",
    ]
    .into_iter()
    .map(|p| IdKey::of_entry(&entry(p)).unwrap())
    .chain([IdKey {
        prefix: "192.0.2.9".parse().unwrap(),
        scope: Some(PortScope::parse("tcp", "443").unwrap()),
    }])
    .collect();
    let table: Vec<(IdKey, u32)> = keys
        .iter()
        .zip([0, 1_234_567_890, 7, 10, 4_000_000_000])
        .map(|(k, i)| (*k, i))
        .collect();
    let mut table = table;
    table.sort();
    Ids::new().save(&path, table.iter().copied()).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let want: Vec<String> = table
        .iter()
        .map(|(k, id)| format!("{id} {}", k.identity()))
        .collect();
    assert_eq!(lines, want);
    assert_eq!(
        Ids::load(&path).unwrap().loaded().collect::<Vec<_>>(),
        table
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_staged_id_file_takes_the_saved_ones_place_only_when_saved() {
    let dir = std::env::temp_dir().join(format!("c2wall-ids-staged-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids");
    let mut ids = Ids::new();
    let a = ids.assign(
        &[entry("192.0.2.1"), entry("2001:db8::/48")],
        std::iter::empty(),
    );
    // Staged before the ids are settled (while the kernel is written).
    let staged = ids.stage_assigned(&path, &a).unwrap();
    assert!(!path.exists(), "nothing in place before it is saved");
    ids.settle(&a);
    ids.saved(staged).unwrap();
    let loaded = Ids::load(&path).unwrap();
    assert_eq!(loaded.loaded().collect::<Vec<_>>(), keyed(&a));
    let b = ids.assign(&[entry("198.51.100.0/24")], keyed(&a).into_iter());
    assert!(b.rows[0].id > a.rows[1].id);
    // The counter is written as the settled one would be: a restart never
    // hands out an id twice.
    assert_eq!(
        loaded
            .assign(&[entry("198.51.100.0/24")], loaded.loaded())
            .rows[0]
            .id,
        b.rows[0].id
    );
    // Dropped unsaved (the kernel refused): the saved file stays, no temp.
    drop(ids.stage_assigned(&path, &b).unwrap());
    assert_eq!(
        Ids::load(&path).unwrap().loaded().collect::<Vec<_>>(),
        keyed(&a)
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "only the id file");
    fs::remove_dir_all(&dir).unwrap();
}
