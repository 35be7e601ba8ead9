//! Real packets across veth pairs between namespaces, through a running agent.

use c2wall_common::*;
use c2wall_e2e::{require_root, topo::*};

fn drop_count(c: &[u64], dir: u32, fam: u32) -> u64 {
    c[verdict_counter(VERDICT_DROP, dir, fam, UNIT_PACKETS) as usize]
}

fn run(xdp_mode: &str) {
    let topo = Topo::new(&xdp_mode[..1]);
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n{CC6}/128\n"));
    let _agent = topo.agent(&["--xdp-mode", xdp_mode, "-b", list.to_str().unwrap()]);
    const N: usize = 200;
    let (s, n) = (&topo.sub, &topo.net);
    // Benign traffic first: it also resolves neighbours on both sides.
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, N),
        N,
        "benign IPv4 delivered"
    );
    assert_eq!(
        topo.udp(n, OK4, s, SUB4, 9001, N),
        N,
        "benign IPv4 reply delivered"
    );
    assert_eq!(
        topo.udp(s, SUB6, n, OK6, 9000, N),
        N,
        "benign IPv6 delivered"
    );
    assert_eq!(
        topo.udp(n, OK6, s, SUB6, 9001, N),
        N,
        "benign IPv6 reply delivered"
    );
    let before = topo.counters();
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, N), 0, "to C&C IPv4 dropped");
    assert_eq!(
        topo.udp(n, CC4, s, SUB4, 9001, N),
        0,
        "from C&C IPv4 dropped"
    );
    assert_eq!(topo.udp(s, SUB6, n, CC6, 9000, N), 0, "to C&C IPv6 dropped");
    assert_eq!(
        topo.udp(n, CC6, s, SUB6, 9001, N),
        0,
        "from C&C IPv6 dropped"
    );
    let after = topo.counters();
    for (dir, fam) in [
        (DIR_TO_CC, FAM_IDX_V4),
        (DIR_FROM_CC, FAM_IDX_V4),
        (DIR_TO_CC, FAM_IDX_V6),
        (DIR_FROM_CC, FAM_IDX_V6),
    ] {
        assert_eq!(
            drop_count(&after, dir, fam) - drop_count(&before, dir, fam),
            N as u64,
            "dropped packets counted exactly (dir {dir}, family {fam})"
        );
    }
    let passed: u64 = [FAM_IDX_V4, FAM_IDX_V6]
        .iter()
        .map(|f| before[verdict_counter(VERDICT_PASS, DIR_TO_CC, *f, UNIT_PACKETS) as usize])
        .sum();
    assert!(
        passed >= 4 * N as u64,
        "benign packets counted as passed: {passed}"
    );
    let metrics = topo.http_get("/metrics").expect("metrics");
    // Per interface: packets to the C&C arrive on the subscriber side (e0),
    // packets from it on the upstream side (e1).
    for (dir, iface) in [("to_cc", "e0"), ("from_cc", "e1")] {
        let line = format!(
            "c2wall_packets_total{{direction=\"{dir}\",family=\"ipv4\",interface=\"{iface}\",verdict=\"drop\"}} {N}"
        );
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains("c2wall_entries{action=\"drop\",family=\"ipv4\"} 1"));
    assert!(topo.status().contains("mode: enforce"));
}

#[test]
fn listed_traffic_dropped_both_directions_native() {
    if require_root("listed_traffic_dropped_both_directions_native") {
        run("native");
    }
}

#[test]
fn listed_traffic_dropped_both_directions_generic() {
    if require_root("listed_traffic_dropped_both_directions_generic") {
        run("generic");
    }
}
