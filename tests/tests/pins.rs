//! A crash between swapping an inner map into its outer slot and pinning
//! it leaves a pin that names another map. The agent must not trust it:
//! the enforced set keeps enforcing, and the first full sync replaces it.

use std::process::Command;
use std::time::Duration;

use c2wall_e2e::{process::capture, require_root, topo::*};

#[test]
fn a_pin_that_names_another_map_is_not_trusted_and_the_set_keeps_enforcing() {
    if !require_root("a_pin_that_names_another_map_is_not_trusted_and_the_set_keeps_enforcing") {
        return;
    }
    let topo = Topo::new("p");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let list = list.to_str().unwrap().to_string();
    let agent = topo.agent(&["-b", &list]);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    agent.signal(libc::SIGKILL);
    drop(agent);

    // Both sets' IPv4 node pins now name a map the outer slots do not hold,
    // as if the agent had died between the swap and the rename of the pin.
    let maps = topo
        .pins
        .0
        .join(format!("maps-v{}", c2wall_common::ABI_VERSION));
    for set in 0..2 {
        let pin = maps.join(format!("C2W_NODES_V4-{set}"));
        std::fs::remove_file(&pin).unwrap();
        let (ok, out) = capture(
            Command::new("bpftool")
                .args(["map", "create"])
                .arg(&pin)
                .args(["type", "hash", "key", "8", "value", "32", "entries", "1"])
                .args(["name", "stray", "flags", "1"]),
        );
        assert!(ok, "{out}");
    }
    // With no agent the program still reads the real maps.
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);

    let agent = topo.agent(&["-b", &list]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20), 20);
    let m = topo.http_get("/metrics").unwrap();
    assert!(
        m.contains("c2wall_applies_total{kind=\"reload\"} 1"),
        "the unreadable set is replaced by a full reload: {m}"
    );
    // The pins are right again: the next agent reads the set back.
    agent.signal(libc::SIGKILL);
    drop(agent);
    let _agent = topo.agent(&["-b", &list]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    let m = topo.http_get("/metrics").unwrap();
    assert!(
        !m.contains("c2wall_applies_total{kind=\"reload\"}"),
        "the repaired pins are trusted: {m}"
    );
}
