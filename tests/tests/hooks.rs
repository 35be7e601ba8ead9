//! Where the program sits: the tc fallback on a real interface, and changes
//! of hook across restarts, while traffic flows.

use std::time::Duration;

use c2wall_e2e::{flow::Flow, process::capture, require_root, topo::*};

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
    flow.finish_without_gap("across five restarts and three hook changes", 300);
    assert!(
        !clsact_filters(&topo, "e0").contains("c2wall_tc"),
        "the clsact filter went with the switch back to tcx"
    );
    drop(agent);
    // Detach removes the tc program: the listed address is reachable again.
    let out = topo.detach();
    assert!(out.contains("e0"), "{out}");
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20) > 15);
}

/// xdp-tools' allow-all filter: it counts every packet by verdict (in its
/// `xdp_stats_map`) and passes them all. Debian's xdp-tools ships it.
const OTHER_PROGRAM: &str = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o";
const OTHER_NAME: &str = "xdpfilt_alw_all";

fn xdp_loader(topo: &Topo, args: &[&str]) -> (bool, String) {
    capture(topo.edge.command("xdp-loader").args(args))
}

/// Packets the other program passed so far, from its stats map, found
/// through the program that runs at XDP on e0 (its own or a dispatcher's
/// component): no name lookups that a parallel test could confuse.
fn other_passed(topo: &Topo) -> u64 {
    use aya::maps::{Map, MapData, PerCpuArray};
    let (_, status) = xdp_loader(topo, &["status", "e0"]);
    let id: u32 = status
        .lines()
        .find(|l| l.contains(OTHER_NAME))
        .and_then(|l| {
            l.split_whitespace()
                .skip_while(|w| !w.contains(OTHER_NAME))
                .nth(2)
        })
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{OTHER_NAME} not on e0: {status}"));
    let info = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .expect("the other program is loaded");
    for map_id in info.map_ids().unwrap().unwrap_or_default() {
        let data = MapData::from_id(map_id).unwrap();
        if data.info().unwrap().name_as_str() != Some("xdp_stats_map") {
            continue;
        }
        let m: PerCpuArray<MapData, [u64; 2]> =
            PerCpuArray::try_from(Map::PerCpuArray(data)).unwrap();
        const XDP_PASS: u32 = 2;
        return m.get(&XDP_PASS, 0).unwrap().iter().map(|r| r[0]).sum();
    }
    panic!("{OTHER_NAME} has no xdp_stats_map");
}

#[test]
fn shares_an_interface_with_a_program_xdp_loader_loaded() {
    if !require_root("shares_an_interface_with_a_program_xdp_loader_loaded") {
        return;
    }
    let topo = Topo::new("xl");
    let (ok, out) = xdp_loader(&topo, &["load", "-m", "skb", "e0", OTHER_PROGRAM]);
    assert!(ok, "xdp-loader load: {out}");
    let (_, status) = xdp_loader(&topo, &["status", "e0"]);
    // With freplace, libxdp puts its program in a dispatcher; kernels that
    // refuse freplace (this project's CI machines) get it alone.
    let dispatcher = status.contains("xdp_dispatcher");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n{CC6}\n"));
    let list = list.to_str().unwrap().to_string();
    // The default, --attach auto.
    let agent = topo.agent(&["-b", &list]);
    let (_, status) = xdp_loader(&topo, &["status", "e0"]);
    assert!(
        status.contains(OTHER_NAME),
        "the other program stays: {status}"
    );
    let hook = attached_metric(&topo);
    if dispatcher {
        // Both components, c2wall first (run priority 10 before 50).
        let c2 = status.find("c2wall").expect("c2wall is a component");
        let other = status.rfind(OTHER_NAME).unwrap();
        assert!(c2 < other, "priority order: {status}");
        assert!(!hook.contains("tcx"), "{hook}");
    } else {
        assert!(
            hook.contains("interface=\"e0\",xdp_mode=\"tcx\"} 1"),
            "beside a program alone at XDP, auto enforces at tc: {hook}"
        );
    }
    let before = other_passed(&topo);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    assert_eq!(topo.udp(&topo.sub, SUB6, &topo.net, CC6, 9000, 20), 0);
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20) > 15);
    let after = other_passed(&topo);
    assert!(
        after >= before + 20,
        "the other program keeps counting what it sees: {before} -> {after}"
    );

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(300));
    agent.signal(libc::SIGKILL);
    drop(agent);
    std::thread::sleep(Duration::from_millis(300));
    let agent = topo.agent(&["-b", &list]);
    std::thread::sleep(Duration::from_millis(200));
    // The other program goes while c2wall runs.
    let (ok, out) = xdp_loader(&topo, &["unload", "e0", "--all"]);
    assert!(ok, "xdp-loader unload: {out}");
    std::thread::sleep(Duration::from_millis(300));
    flow.finish_without_gap(
        "across a kill -9 restart and the other program's unload",
        300,
    );
    drop(agent);

    // c2wall leaves; the other program keeps running.
    topo.detach();
    let (ok, out) = xdp_loader(&topo, &["load", "-m", "skb", "e0", OTHER_PROGRAM]);
    assert!(ok, "xdp-loader load: {out}");
    let agent = topo.agent(&["-b", &list]);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    drop(agent);
    topo.detach();
    let before = other_passed(&topo);
    assert!(
        topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20) > 15,
        "detached"
    );
    assert!(
        other_passed(&topo) >= before + 15,
        "the other program still runs"
    );
    let _ = xdp_loader(&topo, &["unload", "e0", "--all"]);
}

#[test]
fn attach_multi_either_joins_a_dispatcher_or_says_why_and_leaves_nothing() {
    if !require_root("attach_multi_either_joins_a_dispatcher_or_says_why_and_leaves_nothing") {
        return;
    }
    let topo = Topo::new("mu");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let mut c = topo.edge.command(
        c2wall_e2e::process::workspace_bin("c2wall-agent")
            .to_str()
            .unwrap(),
    );
    c.args(["-i", "e0", "-i", "e1", "--attach", "multi", "-b"])
        .arg(&list)
        .arg("--pin-dir")
        .arg(&topo.pins.0)
        .arg("--state-dir")
        .arg(&topo.state)
        .args(["--metrics-addr", METRICS])
        .stderr(std::process::Stdio::piped());
    let mut agent = c2wall_e2e::process::Guarded::spawn(c);
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            // The kernel refused the component: a clear error, nothing left.
            let mut stderr = String::new();
            use std::io::Read;
            agent
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(!status.success());
            assert!(
                stderr.contains("refuses freplace") && stderr.contains("--attach-hook tc"),
                "{stderr}"
            );
            assert!(!xdp_attached(&topo, "e0"), "nothing left on the interface");
            let link = String::from_utf8_lossy(&topo.edge.ip(&["-o", "link", "show", "e0"]).stdout)
                .into_owned();
            let ifindex = link.split(':').next().unwrap().trim().to_string();
            let leftovers: Vec<String> = std::fs::read_dir("/sys/fs/bpf/xdp")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with(&format!("dispatch-{ifindex}-")))
                        .collect()
                })
                .unwrap_or_default();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            assert!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20) > 15);
            return;
        }
        if topo
            .http_get("/readyz")
            .is_some_and(|b| b.contains("ready") && !b.contains("not ready"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "neither ready nor failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The kernel allows freplace: c2wall is a dispatcher's only component.
    let (_, status) = xdp_loader(&topo, &["status", "e0"]);
    assert!(
        status.contains("xdp_dispatcher") && status.contains("c2wall"),
        "{status}"
    );
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    drop(agent);
    topo.detach();
    assert!(
        !xdp_attached(&topo, "e0"),
        "leaving as the last component removes the dispatcher"
    );
}
