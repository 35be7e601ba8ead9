//! `--attach auto|multi` in a real libxdp dispatcher, beside a program
//! xdp-loader loaded, on a kernel that allows freplace: Debian's cloud
//! kernel booted in qemu (this project's CI kernels refuse freplace, see
//! hooks.rs). The VM runs tests/vm/init.sh and prints what it finds; this
//! test checks each finding. The kernel is fetched by scripts/setup.sh.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use c2wall_e2e::process::{capture, workspace_bin};

const KERNEL_TREE: &str = "/var/cache/c2wall-vm/current";

fn kernel() -> Option<PathBuf> {
    std::fs::read_dir(Path::new(KERNEL_TREE).join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// The other program's packets passed so far (its xdp_stats_map, key
/// XDP_PASS, summed over CPUs) from one `bpftool -j map dump`: each CPU's
/// value is `struct xdp_stats_record { u64 packets; u64 bytes; }` as hex
/// bytes, native (little-endian) order.
fn passed(stats: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(stats).unwrap_or_else(|e| panic!("{e}: {stats}"));
    let byte = |b: &serde_json::Value| {
        u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["formatted"]["key"] == 2)
        .flat_map(|e| e["values"].as_array().unwrap().clone())
        .map(|c| {
            let bytes: Vec<u8> = c["value"].as_array().unwrap()[..8]
                .iter()
                .map(byte)
                .collect();
            u64::from_le_bytes(bytes.try_into().unwrap())
        })
        .sum()
}

#[test]
fn joins_a_libxdp_dispatcher_beside_xdp_loaders_program_in_a_vm() {
    let Some(vmlinuz) = kernel() else {
        let msg = format!("no kernel under {KERNEL_TREE}: run scripts/setup.sh");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return;
    };
    let dir = std::env::temp_dir().join(c2wall_e2e::unique("vm"));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initramfs.cpio.gz");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vm/initramfs.sh");
    let (ok, text) = capture(
        Command::new("bash")
            .args([script, KERNEL_TREE])
            .arg(workspace_bin("c2wall-agent"))
            .arg(&initrd),
    );
    assert!(ok, "{text}");
    // Software emulation: these machines offer no usable KVM.
    let out = Command::new("timeout")
        .arg("600")
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for line in console.lines() {
        if let Some(rest) = line.split("C2VM ").nth(1) {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            found
                .entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    let one = |k: &str| -> String {
        found
            .get(k)
            .and_then(|v| v.first().cloned())
            .unwrap_or_else(|| panic!("the VM did not report {k}:\n{console}"))
    };
    let num = |k: &str| -> u64 {
        one(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k} = {:?}:\n{console}", one(k)))
    };
    assert!(
        found.contains_key("done"),
        "the VM did not finish:\n{console}"
    );
    eprintln!("VM kernel {}", one("kernel"));

    // tc on a kernel without tcx: the clsact filter enforces.
    assert!(
        one("tc_metric").contains("xdp_mode=\"clsact\"} 1"),
        "{}",
        one("tc_metric")
    );
    assert_eq!(num("tc_listed"), 0);
    assert_eq!(num("tc_benign"), 5);
    // tc -> exclusive XDP -> multi (through a temporary clsact filter) under a
    // flow: nothing listed gets through, nothing of ours is left at tc.
    assert!(one("exclusive_metric").contains("xdp_mode=\"native\"} 1"));
    let multi = one("multi_status");
    assert!(
        multi.contains("xdp_dispatcher") && multi.contains("c2wall"),
        "{multi}"
    );
    assert_eq!(num("multi_filters"), 0, "the clsact filters are gone");
    assert_eq!(
        num("switch_listed"),
        0,
        "no listed packet across tc -> xdp -> multi"
    );
    assert!(
        num("switch_benign") >= 760,
        "benign: {} of 800",
        num("switch_benign")
    );
    assert!(one("detached0_status").contains("No XDP program loaded"));

    // libxdp made a dispatcher for the other program: the kernel allows freplace.
    let only = one("status_other_only");
    assert!(
        only.contains("xdp_dispatcher") && only.contains("xdpfilt_alw_all"),
        "{only}"
    );
    // c2wall (auto) joined it: both listed, in libxdp's order.
    let both = one("status_both");
    let (c2, other) = (both.find("c2wall"), both.find("xdpfilt_alw_all"));
    assert!(c2.is_some() && other.is_some() && c2 < other, "{both}");
    assert_eq!(num("listed"), 0, "listed traffic dropped");
    assert_eq!(num("benign"), 5, "benign traffic passes");
    let stats = &found["stats"];
    assert!(
        passed(&stats[1]) >= passed(&stats[0]) + 5,
        "the other program counts the rest: {} -> {}",
        passed(&stats[0]),
        passed(&stats[1])
    );
    // kill -9 leaves the dispatcher as it was; the restart rebuilds it with
    // the new program; the other program then leaves while c2wall runs.
    assert_eq!(one("status_after_kill"), both, "kill -9 changes nothing");
    let restarted = one("status_after_restart");
    assert!(
        restarted.contains("c2wall") && restarted.contains("xdpfilt_alw_all"),
        "{restarted}"
    );
    assert_ne!(
        restarted, both,
        "a new dispatcher with the new c2wall program"
    );
    let alone = one("status_other_unloaded");
    assert!(
        alone.contains("c2wall") && !alone.contains("xdpfilt"),
        "{alone}"
    );
    assert_eq!(
        num("flow_listed"),
        0,
        "no listed packet across kill -9, restart, unload"
    );
    assert!(
        num("flow_benign") >= 760,
        "benign flow: {} of 800",
        num("flow_benign")
    );
    // The other program joins c2wall's dispatcher; c2wall leaves it.
    let rejoined = one("status_rejoined");
    assert!(
        rejoined.contains("c2wall") && rejoined.contains("xdpfilt_alw_all"),
        "{rejoined}"
    );
    let detached = one("status_detached");
    assert!(
        !detached.contains("c2wall") && detached.contains("xdpfilt_alw_all"),
        "{detached}"
    );
    assert_eq!(
        num("listed_detached"),
        5,
        "the listed address is reachable again"
    );
    assert!(
        passed(&stats[3]) >= passed(&stats[2]) + 5,
        "the other program still runs after c2wall left"
    );
}
