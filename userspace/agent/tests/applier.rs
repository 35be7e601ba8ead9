//! The applier and engine against in-memory maps: no root needed.

use c2wall_agent::{
    apply::{Applier, IN_PLACE_LIMIT},
    compile::compile,
    dataplane::{Dataplane, MemDataplane},
    engine::Engine,
    ids::{self, Ids},
    source::{file::parse_blocklist, Snapshot},
    AgentError,
};
use c2wall_common::MODE_ENFORCE;
use c2wall_model::Entry;

fn entries(text: &str) -> Vec<Entry> {
    let (e, r) = parse_blocklist("t", text);
    assert!(r.is_empty());
    e.into_iter().map(|(_, e)| e).collect()
}

fn snap(text: &str) -> Snapshot {
    Snapshot {
        entries: entries(text),
        ..Default::default()
    }
}

fn hosts(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| {
            let i = i + offset;
            format!("10.{}.{}.{}\n", (i >> 16) & 255, (i >> 8) & 255, i & 255)
        })
        .collect()
}

#[test]
fn small_changes_go_in_place_large_ones_reload_and_both_converge() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    let r = eng.sync(&snap("203.0.113.0/24\n")).unwrap();
    assert!(r.stats.reload, "the first list sizes the maps");
    let r = eng.sync(&snap("203.0.113.0/24\n198.51.100.1\n")).unwrap();
    assert!(!r.stats.reload, "a small change goes in place");
    let set_before = eng.applier.dataplane().config.active_set;
    let r = eng.sync(&snap(&hosts(IN_PLACE_LIMIT + 10, 0))).unwrap();
    assert!(r.stats.reload, "a big change is a reload");
    assert_ne!(
        eng.applier.dataplane().config.active_set,
        set_before,
        "reload flips the set"
    );
    // Only the active set remains after a reload.
    let dp = eng.applier.dataplane();
    let active = dp.config.active_set as u8;
    assert!(dp.nodes.keys().all(|(s, _)| *s == active));
    let r = eng.sync(&snap(&hosts(IN_PLACE_LIMIT + 11, 0))).unwrap();
    assert!(!r.stats.reload, "one more entry is in place");
    assert_eq!(r.stats.writes, 1);
    // Converged: the active set equals a fresh compile of the same list.
    let list = entries(&hosts(IN_PLACE_LIMIT + 11, 0));
    let with_ids = ids::fresh(&list);
    let want = compile(&with_ids);
    let got = eng.applier.dataplane().active();
    assert_eq!(
        got.nodes.keys().collect::<std::collections::HashSet<_>>(),
        want.nodes.keys().collect()
    );
    assert_eq!(got.v4_levels, want.v4_levels);
}

#[test]
fn a_failed_reload_leaves_the_previous_list_enforced() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    eng.sync(&snap("203.0.113.5\n")).unwrap();
    let before = eng.applier.dataplane().active();
    eng.applier.dataplane_mut().fail_after = Some(100);
    let err = eng.sync(&snap(&hosts(IN_PLACE_LIMIT * 2, 0))).unwrap_err();
    assert!(matches!(err, AgentError::MapWrite { .. }), "{err}");
    let dp = eng.applier.dataplane();
    assert_eq!(dp.active(), before, "active set untouched");
    let inactive = 1 - dp.config.active_set as u8;
    assert!(
        dp.nodes.keys().all(|(s, _)| *s != inactive),
        "partial writes to the inactive set were cleaned up"
    );
}

#[test]
fn a_failed_in_place_update_is_rolled_back() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    eng.sync(&snap("203.0.113.5\n203.0.113.6\n")).unwrap();
    let before = eng.applier.dataplane().active();
    // Fails after the first slot write of a 3-slot change.
    eng.applier.dataplane_mut().fail_after = Some(1);
    assert!(eng
        .sync(&snap("203.0.113.7\n203.0.113.8\n203.0.113.9\n"))
        .is_err());
    let after = eng.applier.dataplane().active();
    assert_eq!(
        after.nodes, before.nodes,
        "restored what was enforced before"
    );
}

#[test]
fn capacity_is_checked_before_writing() {
    let mut dp = MemDataplane::new();
    dp.caps = (100, 100, 100);
    let mut eng = Engine::new(Applier::adopt(dp).unwrap(), Ids::new(), None);
    // A /21 expands into eight /24 slots at level 24.
    let e = eng.sync(&snap(&hosts(95, 0))).map(|_| ());
    assert!(e.is_ok());
    let err = eng.sync(&snap(&hosts(IN_PLACE_LIMIT + 1, 0))).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("IPv4") && msg.contains("capacity.nodes_v4"),
        "{msg}"
    );
    assert_eq!(eng.applier.dataplane().active().nodes.len(), 95);
}

#[test]
fn adoption_keeps_the_active_set_and_clears_leftovers() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    eng.applier.set_mode(MODE_ENFORCE).unwrap();
    eng.sync(&snap("203.0.113.5\n2001:db8::/32 tcp 443\n"))
        .unwrap();
    let mut dp = eng.applier.dataplane().clone();
    // Leftovers of a reload that a killed agent never finished.
    let active = dp.active();
    let inactive = 1 - dp.config.active_set as u8;
    for (k, v) in &active.nodes {
        let mut k = *k;
        k.level = 32;
        dp.put_node(inactive, &k, v).unwrap();
    }
    let adopted = Applier::adopt(dp).unwrap();
    assert_eq!(adopted.enforced().unwrap(), active);
    assert_eq!(adopted.slot_counts(), active.slot_counts());
    assert_eq!(adopted.mode(), MODE_ENFORCE);
    assert!(adopted
        .dataplane()
        .nodes
        .keys()
        .all(|(s, _)| *s != inactive));
}

#[test]
fn allowlist_changes_apply_add_first() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    let mut s = snap("203.0.113.0/24\n");
    s.allow = vec!["203.0.113.53/32".parse().unwrap()];
    eng.sync(&s).unwrap();
    s.allow = vec!["203.0.113.54/32".parse().unwrap()];
    eng.sync(&s).unwrap();
    assert_eq!(eng.applier.dataplane().allow, s.allow);
}

fn change(line: &str) -> (c2wall_model::Identity, Option<Entry>) {
    let e = entries(line)[0].clone();
    (e.identity(), Some(e))
}

#[test]
fn a_delta_costs_its_own_slots_not_the_list() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    eng.sync(&snap(&hosts(20_000, 0))).unwrap();
    // One new host: one slot (+ its filter block), in place.
    let r = eng.sync_changes(&[change("192.0.2.1")]).unwrap();
    assert!(!r.stats.reload);
    assert_eq!(r.entries, 20_001);
    assert!(r.stats.writes <= 2, "{:?}", r.stats);
    // A /22 over 1,024 listed hosts: its 4 slots at the /24 level (+ filter
    // blocks); the hosts' own rules are longer, so they are looked at, not
    // rewritten.
    let r = eng.sync_changes(&[change("10.0.0.0/22 monitor")]).unwrap();
    assert!(!r.stats.reload);
    assert!((4..=8).contains(&r.stats.writes), "{:?}", r.stats);
    let ident = entries("10.0.0.0/22")[0].identity();
    let r = eng.sync_changes(&[(ident, None)]).unwrap();
    assert_eq!((r.stats.writes, r.stats.deletes), (0, 4), "{:?}", r.stats);
    assert_eq!(r.entries, 20_001);
}

#[test]
fn a_failed_delta_changes_nothing() {
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    eng.sync(&snap("203.0.113.0/24\n198.51.100.7\n")).unwrap();
    let before = eng.applier.dataplane().active();
    let ids_before = eng.entries();
    eng.applier.dataplane_mut().fail_after = Some(1);
    let delta = [
        change("203.0.113.64/26 monitor"),
        change("192.0.2.1"),
        (entries("198.51.100.7")[0].identity(), None),
    ];
    assert!(eng.sync_changes(&delta).is_err());
    assert_eq!(eng.applier.dataplane().active(), before, "restored");
    assert_eq!(eng.entries(), ids_before, "ids unchanged");
    // The same delta applies cleanly afterwards and equals a full compile.
    eng.applier.dataplane_mut().fail_after = None;
    eng.sync_changes(&delta).unwrap();
    let list = entries("203.0.113.0/24\n203.0.113.64/26 monitor\n192.0.2.1\n");
    let with_ids: Vec<(Entry, u32)> = list
        .iter()
        .map(|e| (e.clone(), eng.id_of(&e.identity()).unwrap()))
        .collect();
    let want = compile(&with_ids);
    let got = eng.applier.dataplane().active();
    assert_eq!((got.nodes, got.ports), (want.nodes, want.ports));
}

#[test]
fn in_place_keeps_the_filter_bits_a_reload_wrote() {
    use c2wall_agent::compile::{filter_mark, NodeSlot};
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    let r = eng.sync(&snap("203.0.113.66\n")).unwrap();
    assert!(r.stats.reload, "maps sized for the first list");
    let r = eng.sync(&snap("203.0.113.77\n")).unwrap();
    assert!(!r.stats.reload, "a swap goes in place");
    let dp = eng.applier.dataplane();
    let set = dp.config.active_set as u8;
    let bits = dp.config.filter_bits[set as usize];
    // Bits are never cleared in place: both addresses' bits are set.
    for a in ["203.0.113.66", "203.0.113.77"] {
        let ip: std::net::Ipv4Addr = a.parse().unwrap();
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&ip.octets());
        let slot = NodeSlot {
            family: c2wall_model::Family::V4,
            level: 32,
            addr,
        };
        let (idx, mark) = filter_mark(&slot, bits).unwrap();
        assert!(dp.filter[set as usize][&idx].has(mark), "{a}");
    }
}

/// The ids of `list`'s entries as the engine holds them.
fn ids_of(eng: &Engine<MemDataplane>, list: &str) -> Vec<u32> {
    entries(list)
        .iter()
        .map(|e| eng.id_of(&e.identity()).expect("listed"))
        .collect()
}

#[test]
fn entry_ids_hold_through_resyncs_deltas_and_a_restart_and_are_never_reused() {
    let dir = std::env::temp_dir().join(format!("c2wall-engine-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids");
    let adopt = || Applier::adopt(MemDataplane::new()).unwrap();
    let mut eng = Engine::new(adopt(), Ids::new(), Some(path.clone()));
    let list = "192.0.2.1\n192.0.2.1 udp 53\n192.0.2.1 tcp 443\n198.51.100.0/24\n2001:db8::1\n";
    eng.sync(&snap(list)).unwrap();
    let first = ids_of(&eng, list);
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "one id per identity: {first:?}");

    // The same list reordered, one entry more: every id holds.
    let again = "2001:db8::1\n192.0.2.1 tcp 443\n203.0.113.5\n198.51.100.0/24\n192.0.2.1 udp 53\n192.0.2.1\n";
    eng.sync(&snap(again)).unwrap();
    assert_eq!(ids_of(&eng, list), first);
    let added = eng.id_of(&entries("203.0.113.5")[0].identity()).unwrap();
    assert!(
        added > *sorted.last().unwrap(),
        "a new entry takes a fresh id"
    );
    assert_eq!(eng.entries(), 6);

    // A delta: one listed, one withdrawn (journaled to the file).
    let gone = entries("198.51.100.0/24")[0].identity();
    let new = entries("203.0.113.6")[0].clone();
    eng.sync_changes(&[(gone.clone(), None), (new.identity(), Some(new.clone()))])
        .unwrap();
    assert_eq!(eng.id_of(&gone), None);
    let new_id = eng.id_of(&new.identity()).unwrap();
    assert!(new_id > added);
    assert_eq!(eng.entries(), 6);

    // A restart: the file names the entries before any sync, and the
    // first full sync gives each listed entry the id it had.
    let kept =
        "192.0.2.1\n192.0.2.1 udp 53\n192.0.2.1 tcp 443\n2001:db8::1\n203.0.113.5\n203.0.113.6\n";
    let want = ids_of(&eng, kept);
    let mut eng = Engine::new(adopt(), Ids::load(&path).unwrap(), Some(path.clone()));
    assert_eq!(ids_of(&eng, kept), want);
    assert_eq!(eng.entries(), 6);
    let named = eng.identities(want.iter().copied());
    let names: Vec<String> = want.iter().map(|id| named[id].to_string()).collect();
    assert_eq!(names[1], "192.0.2.1/32 udp 53");
    assert_eq!(names[4], "203.0.113.5/32");
    // The withdrawn prefix listed again is a new entry: a fresh id.
    eng.sync(&snap(&format!("{kept}198.51.100.0/24\n")))
        .unwrap();
    assert_eq!(ids_of(&eng, kept), want);
    assert!(eng.id_of(&gone).unwrap() > new_id, "ids are never reused");
    std::fs::remove_dir_all(&dir).unwrap();
}
