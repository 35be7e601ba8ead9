//! The agent works with exactly the capabilities deploy/c2wall-agent.service
//! grants, read from that file, so the unit and the code cannot drift apart.

use std::process::Command;

use c2wall_e2e::{process::workspace_bin, require_root, topo::*};

fn unit_caps() -> Vec<String> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/c2wall-agent.service"
    ))
    .expect("unit file");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet in the unit");
    line.split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

fn bounded(caps: &[String], topo: &Topo, list: &str) -> Command {
    let set = caps.iter().map(|c| format!(",+{c}")).collect::<String>();
    let mut c = topo.edge.command("setpriv");
    c.arg(format!("--bounding-set=-all{set}"))
        .arg("--")
        .arg(workspace_bin("c2wall-agent"))
        .args([
            "-i",
            "e0",
            "-i",
            "e1",
            "--metrics-addr",
            METRICS,
            "-b",
            list,
        ])
        .arg("--pin-dir")
        .arg(&topo.pins.0)
        .arg("--state-dir")
        .arg(&topo.state);
    c
}

#[test]
fn runs_with_the_units_capabilities_and_not_fewer() {
    if !require_root("runs_with_the_units_capabilities_and_not_fewer") {
        return;
    }
    let caps = unit_caps();
    assert_eq!(caps, ["bpf", "net_admin", "perfmon"]);
    let topo = Topo::new("c");
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let list = list.to_str().unwrap();

    // One capability short: refused, with the error named.
    for missing in 0..caps.len() {
        let fewer: Vec<String> = caps
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, c)| c.clone())
            .collect();
        let out = bounded(&fewer, &topo, list).output().unwrap();
        assert!(!out.status.success(), "ran without CAP_{}", caps[missing]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("c2wall-agent: error:"), "{err}");
        let _ = Command::new(workspace_bin("c2wall-agent"))
            .args(["detach", "--pin-dir"])
            .arg(&topo.pins.0)
            .output();
    }

    let start = || {
        let mut c = bounded(&caps, &topo, list);
        c.stderr(std::process::Stdio::null());
        let agent = c2wall_e2e::process::Guarded::spawn(c);
        topo.wait_ready(std::time::Duration::from_secs(20));
        agent
    };
    let agent = start();
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20), 20);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);

    // A restart with the same capabilities adopts the pinned rule set: the
    // inner maps are opened from their pins (opening them by id would need
    // CAP_SYS_ADMIN), so the same list needs no reload.
    agent.signal(libc::SIGKILL);
    drop(agent);
    let _agent = start();
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    let m = topo.http_get("/metrics").unwrap();
    assert!(
        !m.contains("c2wall_applies_total{kind=\"reload\"}"),
        "the restarted agent read the enforced set back: {m}"
    );
}
