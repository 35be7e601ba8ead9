//! The rule maps follow the list: a reload creates the new set's maps at the
//! size its list needs and frees the old ones, so kernel memory grows with
//! the list and shrinks back, with real traffic flowing and no gap.

use std::time::{Duration, Instant};

use c2wall_agent::kernel::memory::pinned_memlock;
use c2wall_e2e::{flow::Flow, require_root, topo::*};

/// `n` IPv4 hosts in 10.0.0.0/8, away from the test's addresses.
fn hosts(n: usize) -> String {
    (0..n)
        .map(|i| format!("10.{}.{}.{}\n", (i >> 16) & 255, (i >> 8) & 255, i & 255))
        .collect()
}

fn slots_v4(topo: &Topo) -> Option<u64> {
    let m = topo.http_get("/metrics")?;
    m.lines()
        .find_map(|l| l.strip_prefix("c2wall_map_slots{map=\"C2W_NODES_V4\"} "))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_slots(topo: &Topo, want: u64) {
    let start = Instant::now();
    while slots_v4(topo) != Some(want) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent did not apply {want} IPv4 slots (has {:?})",
            slots_v4(topo)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Inner maps in the filter's outer maps (every size), by the outer maps'
/// pins: one per rule set when no old filter is left behind.
fn filters_held(maps: &std::path::Path) -> usize {
    use aya::maps::{ArrayOfMaps, Map, MapData};
    c2wall_common::MAP_FILTERS
        .iter()
        .map(|name| {
            let data = MapData::from_pin(maps.join(name)).expect("the outer map's pin");
            let outer: ArrayOfMaps<MapData, MapData> =
                ArrayOfMaps::try_from(Map::from_map_data(data).unwrap()).unwrap();
            (0..outer.len()).filter(|i| outer.get(i, 0).is_ok()).count()
        })
        .sum()
}

#[test]
fn kernel_memory_grows_and_shrinks_with_the_list_without_a_gap() {
    if !require_root("kernel_memory_grows_and_shrinks_with_the_list_without_a_gap") {
        return;
    }
    let topo = Topo::new("z");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let agent = topo.agent(&["-b", list.to_str().unwrap()]);
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20) > 0);
    let maps = topo
        .pins
        .0
        .join(format!("maps-v{}", c2wall_common::ABI_VERSION));
    wait_slots(&topo, 1);
    let small = pinned_memlock(&maps).unwrap();

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(300));
    // Grow: 100,000 more entries than the maps were made for.
    std::fs::write(&list, format!("{CC4}\n{}", hosts(100_000))).unwrap();
    agent.signal(libc::SIGHUP);
    wait_slots(&topo, 100_001);
    let big = pinned_memlock(&maps).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Shrink back.
    std::fs::write(&list, format!("{CC4}\n")).unwrap();
    agent.signal(libc::SIGHUP);
    wait_slots(&topo, 1);
    let again = pinned_memlock(&maps).unwrap();
    // Each set's filter sits in the outer map of its size alone: the one
    // it had at 100,001 entries was taken out of the larger size's map.
    assert_eq!(
        filters_held(&maps),
        c2wall_common::RULE_SETS as usize,
        "inner filters held over all sizes' outer maps"
    );
    std::thread::sleep(Duration::from_millis(300));
    flow.finish_without_gap("while the maps grew and shrank", 300);

    eprintln!(
        "kernel memory of the pinned maps: {small} B with 1 entry, {big} B with 100,001, {again} B with 1 again"
    );
    assert!(small <= 4 << 20, "1 entry: {small} B, at most 4 MiB");
    // A slot table entry is 12 bytes (c2wall_common::table), before the
    // table's free room, the filter and the hit counters.
    assert!(
        big >= small + 100_000 * 12,
        "grown with the list: {big} B vs {small} B"
    );
    assert!(
        again <= small + small / 2,
        "shrunk back with the list: {again} B vs {small} B at first"
    );
    drop(agent);
}
