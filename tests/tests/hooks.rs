//! Where the program sits: the tc fallback on a real interface, and changes
//! of hook across restarts, while traffic flows.

use std::time::Duration;

use c2wall_e2e::{flow::Flow, require_root, topo::*};

fn xdp_attached(topo: &Topo, iface: &str) -> bool {
    let out = topo.edge.ip(&["-d", "link", "show", iface]);
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// `tc filter show dev IFACE ingress` in the edge namespace.
fn clsact_filters(topo: &Topo, iface: &str) -> String {
    let out = topo
        .edge
        .command("tc")
        .args(["filter", "show", "dev", iface, "ingress"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn attached_metric(topo: &Topo) -> String {
    let m = topo.http_get("/metrics").unwrap();
    m.lines()
        .filter(|l| l.starts_with("c2wall_xdp_attached{"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn tc_fallback_enforces_and_hook_changes_leave_no_gap() {
    if !require_root("tc_fallback_enforces_and_hook_changes_leave_no_gap") {
        return;
    }
    let topo = Topo::new("hk");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n{CC6}\n"));
    let list = list.to_str().unwrap().to_string();
    let agent = topo.agent(&["-b", &list, "--attach-hook", "tc"]);
    assert!(!xdp_attached(&topo, "e0"), "tc only: no XDP program");
    assert!(
        attached_metric(&topo).contains("interface=\"e0\",xdp_mode=\"tcx\"} 1"),
        "{}",
        attached_metric(&topo)
    );
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    assert_eq!(topo.udp(&topo.sub, SUB6, &topo.net, CC6, 9000, 20), 0);
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20) > 15);
    assert!(topo.udp(&topo.sub, SUB6, &topo.net, OK6, 9000, 20) > 15);
    // Both directions: replies from the C&C side are dropped at e1.
    assert_eq!(topo.udp(&topo.net, CC4, &topo.sub, SUB4, 9001, 20), 0);
    let c = topo.counters();
    let dropped = |fam| {
        c[c2wall_common::verdict_counter(
            c2wall_common::VERDICT_DROP,
            c2wall_common::DIR_TO_CC,
            fam,
            c2wall_common::UNIT_PACKETS,
        ) as usize]
    };
    assert!(
        dropped(c2wall_common::FAM_IDX_V4) >= 20,
        "counted at tc: {c:?}"
    );
    assert!(
        dropped(c2wall_common::FAM_IDX_V6) >= 20,
        "counted at tc: {c:?}"
    );

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(300));
    // kill -9, then the same hook again: the pinned tcx link is adopted.
    agent.signal(libc::SIGKILL);
    drop(agent);
    std::thread::sleep(Duration::from_millis(300));
    let agent = topo.agent(&["-b", &list, "--attach-hook", "tc"]);
    drop(agent);
    // tc -> xdp -> clsact -> tc: each new hook is in place before the old
    // one goes.
    let agent = topo.agent(&["-b", &list, "--attach-hook", "xdp"]);
    assert!(xdp_attached(&topo, "e0"));
    drop(agent);
    let agent = topo.agent(&["-b", &list, "--attach-hook", "tc-clsact"]);
    assert!(
        !xdp_attached(&topo, "e0"),
        "the XDP link went with the switch"
    );
    assert!(
        clsact_filters(&topo, "e0").contains("c2wall_tc"),
        "{}",
        clsact_filters(&topo, "e0")
    );
    assert!(attached_metric(&topo).contains("xdp_mode=\"clsact\"} 1"));
    drop(agent);
    let agent = topo.agent(&["-b", &list, "--attach-hook", "tc-clsact"]);
    assert!(attached_metric(&topo).contains("xdp_mode=\"clsact\"} 1"));
    drop(agent);
    let agent = topo.agent(&["-b", &list, "--attach-hook", "tc"]);
    std::thread::sleep(Duration::from_millis(300));
    let (sent, got) = flow.finish();
    assert!(
        !clsact_filters(&topo, "e0").contains("c2wall_tc"),
        "the clsact filter went with the switch back to tcx"
    );
    assert!(sent > 300, "flow too short: {sent}");
    assert_eq!(
        got[0], 0,
        "no listed packet delivered across five restarts and three hook changes ({sent} sent)"
    );
    assert!(
        got[1] as f64 > sent as f64 * 0.95,
        "benign flow kept going: {} of {sent}",
        got[1]
    );
    eprintln!(
        "hook changes: {sent} rounds, listed delivered {}, benign {}",
        got[0], got[1]
    );
    drop(agent);
    // Detach removes the tc program: the listed address is reachable again.
    let out = topo.detach();
    assert!(out.contains("e0"), "{out}");
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20) > 15);
}
