//! The agent's container image (scripts/container.sh) under Debian's podman:
//! only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, the edge namespace as its
//! network, the host's bpffs; it enforces, and a container restart leaves no
//! gap.

use std::{process::Command, time::Duration};

use c2wall_e2e::{
    flow::Flow,
    process::{capture, workspace_bin},
    require_root,
    topo::*,
    unique,
};

/// podman with what this project's CI machines need and any host accepts:
/// runc (crun refuses their hybrid cgroup layout) and ulimits no higher
/// than root's hard limits there (root lacks CAP_SYS_RESOURCE, so podman's
/// defaults cannot be set).
fn podman(args: &[&str]) -> (bool, String) {
    capture(
        Command::new("podman")
            .args(["--runtime", "runc"])
            .args(args),
    )
}

/// Removes the test's container and image however the test ends.
struct Cleanup {
    name: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[test]
fn the_agent_container_enforces_with_three_capabilities_and_restarts_with_no_gap() {
    if !require_root(
        "the_agent_container_enforces_with_three_capabilities_and_restarts_with_no_gap",
    ) {
        return;
    }
    let topo = Topo::new("ct");
    let id = unique("img");
    let image = format!("localhost/c2wall-agent:{id}");
    let name = format!("{id}-agent");
    let _cleanup = Cleanup {
        name: name.clone(),
        image: image.clone(),
    };
    let bin_dir = workspace_bin("c2wall-agent");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/container.sh");
    let seccomp = topo.state.join("seccomp-agent.json");
    std::fs::create_dir_all(&topo.state).unwrap();
    let (ok, text) = capture(
        Command::new("bash")
            .args([
                script,
                "--bin-dir",
                bin_dir.parent().unwrap().to_str().unwrap(),
            ])
            .args(["--tag", &image, "--seccomp", seccomp.to_str().unwrap()]),
    );
    assert!(ok, "{text}");
    let seccomp = format!("seccomp={}", seccomp.display());

    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n{CC6}\n"));
    assert!(list.starts_with(&topo.state));
    let netns = format!("ns:{}", topo.edge.path());
    let state = format!("{}:/var/lib/c2wall", topo.state.display());
    let pins = topo.pins.0.to_str().unwrap();
    let (ok, text) = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--cap-drop=ALL",
        "--cap-add=BPF,NET_ADMIN,PERFMON",
        "--security-opt",
        &seccomp,
        "--network",
        &netns,
        "-v",
        "/sys/fs/bpf:/sys/fs/bpf",
        "-v",
        &state,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        &image,
        "-i",
        "e0",
        "-i",
        "e1",
        "-b",
        "/var/lib/c2wall/blocklist.txt",
        "--pin-dir",
        pins,
        "--metrics-addr",
        METRICS,
    ]);
    assert!(ok, "podman run: {text}");
    if std::panic::catch_unwind(|| topo.wait_ready(Duration::from_secs(30))).is_err() {
        panic!(
            "agent in the container not ready: {}",
            podman(&["logs", &name]).1
        );
    }

    // Exactly the three capabilities, nothing else.
    let (_, pid) = podman(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        eff,
        (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON) | (1 << CAP_BPF),
        "{status}"
    );

    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);
    assert_eq!(topo.udp(&topo.sub, SUB6, &topo.net, CC6, 9000, 20), 0);
    assert!(topo.udp(&topo.sub, SUB4, &topo.net, OK4, 9000, 20) > 15);

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, text) = podman(&["restart", "-t", "0", &name]);
    assert!(ok, "podman restart: {text}");
    topo.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    flow.finish_without_gap("across a container restart", 300);
}
