//! Agent restarts, reloads and exits while real traffic flows.

use std::time::Duration;

use c2wall_e2e::{flow::Flow, require_root, topo::*};

fn xdp_prog_id(topo: &Topo, iface: &str) -> Option<String> {
    let out = topo.edge.ip(&["-d", "link", "show", iface]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .map(String::from)
}

#[test]
fn kill_9_during_traffic_leaves_no_gap_and_a_new_agent_converges() {
    if !require_root("kill_9_during_traffic_leaves_no_gap_and_a_new_agent_converges") {
        return;
    }
    let topo = Topo::new("r");
    topo.net
        .ip(&["addr", "add", "203.0.113.99/24", "dev", "n0"]);
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let list_s = list.to_str().unwrap().to_string();
    let agent = topo.agent(&["-b", &list_s]);
    // Warm neighbours so the flow starts clean.
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20) > 0);
    let first_prog = xdp_prog_id(&topo, "e0").expect("attached");

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(500));
    agent.signal(libc::SIGKILL);
    drop(agent);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        xdp_prog_id(&topo, "e0").as_deref(),
        Some(first_prog.as_str()),
        "still attached with no agent"
    );
    // The new agent's list adds an entry: it must adopt and converge.
    std::fs::write(&list, format!("{CC4}\n{OK4} monitor\n203.0.113.99\n")).unwrap();
    let agent = topo.agent(&["-b", &list_s]);
    std::thread::sleep(Duration::from_millis(300));
    agent.signal(libc::SIGKILL);
    drop(agent);
    // Leftovers of an older map layout, and a config asking for other sizes.
    let stale = topo.pins.0.join("maps-v0");
    std::fs::create_dir(&stale).unwrap();
    let cfg = topo.write_list("agent.toml", "[capacity]\nnodes_v4 = 1000\n");
    let agent = topo.agent(&["-b", &list_s, "--config", cfg.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
    flow.finish_without_gap("across two kill -9 restarts", 500);
    assert!(!stale.exists(), "maps of an older layout are unpinned");

    let second_prog = xdp_prog_id(&topo, "e0").expect("attached");
    assert_ne!(
        first_prog, second_prog,
        "the new agent's program replaced the old one on the link"
    );
    assert_eq!(
        topo.udp(&topo.sub, SUB4, &topo.net, "203.0.113.99", 9000, 20),
        0,
        "an entry added while the agent was down is enforced after restart"
    );
    let metrics = topo.http_get("/metrics").unwrap();
    assert!(
        metrics.contains("c2wall_entries{action=\"monitor\",family=\"ipv4\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("c2wall_map_slot_capacity{map=\"C2W_NODES_V4\"} 1000"),
        "the configured limit applies at once, pinned maps or not (each reload sizes new maps): {metrics}"
    );
    drop(agent);
}

#[test]
fn sighup_applies_the_difference_sigterm_keeps_enforcing_detach_removes() {
    if !require_root("sighup_applies_the_difference_sigterm_keeps_enforcing_detach_removes") {
        return;
    }
    let topo = Topo::new("h");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let agent = topo.agent(&["-b", list.to_str().unwrap()]);
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 20), 20);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 20), 0);

    // Swap the entry; one bad line must not stop the good ones.
    std::fs::write(&list, format!("{OK4}\nnot-an-address\n")).unwrap();
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 20),
        20,
        "withdrawn entry passes again"
    );
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 20), 0, "added entry drops");
    let m = topo.http_get("/metrics").unwrap();
    assert!(m.contains("c2wall_source_rejected_lines 1"), "{m}");
    // The first list sizes the maps (a reload); the swap goes in place.
    assert!(
        m.contains("c2wall_applies_total{kind=\"reload\"} 1")
            && m.contains("c2wall_applies_total{kind=\"in_place\"} 1"),
        "{m}"
    );

    // An unreadable file keeps the previous list.
    std::fs::remove_file(&list).unwrap();
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 20),
        0,
        "still enforced after a failed read"
    );

    agent.signal(libc::SIGTERM);
    let mut agent = agent;
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 20),
        0,
        "enforcing after the agent exited"
    );

    assert!(topo.detach().contains("detached from 2 interface(s)"));
    assert!(!topo.pins.0.exists());
    assert_eq!(xdp_prog_id(&topo, "e0"), None);
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 20),
        20,
        "traffic flows after detach"
    );
}

#[test]
fn a_misspelled_interface_is_refused_before_anything_is_attached() {
    if !require_root("a_misspelled_interface_is_refused_before_anything_is_attached") {
        return;
    }
    let topo = Topo::new("m");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let out = topo
        .edge
        .command(
            c2wall_e2e::process::workspace_bin("c2wall-agent")
                .to_str()
                .unwrap(),
        )
        .args(["-i", "e0", "-i", "e2", "-b", list.to_str().unwrap()])
        .arg("--pin-dir")
        .arg(&topo.pins.0)
        .arg("--state-dir")
        .arg(&topo.state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interface e2: no such interface"), "{err}");
    assert_eq!(xdp_prog_id(&topo, "e0"), None, "e0 was not attached");
    assert!(!topo.pins.0.exists(), "nothing pinned");
}
