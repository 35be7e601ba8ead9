//! Bad luck with real processes and real packets: a coordinator whose store
//! was replaced, an agent whose disk fills. Enforcement never silently goes
//! back to an older list.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use c2wall_e2e::{
    process::{workspace_bin, Guarded},
    require_root,
    topo::*,
};

macro_rules! root {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent(topo: &Topo, state: &Path, extra: &[&str]) -> Guarded {
    let mut args = topo.sync_args("edge-f");
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    topo.agent_in(state, &refs)
}

/// The coordinator's store files (database, WAL, shared memory).
fn remove_store(topo: &Topo) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!(
            "{}{ext}",
            topo.state.join("coordinator.db").display()
        ));
    }
}

#[test]
fn a_replaced_store_is_refused_and_agents_follow_another_lineage_only_when_moved() {
    root!("a_replaced_store_is_refused_and_agents_follow_another_lineage_only_when_moved");
    let topo = Topo::new("ls");
    let coord = topo.coordinator();
    let _agent = agent(&topo, &topo.state, &["--sync-unready-after", "2"]);
    let (s, n) = (&topo.sub, &topo.net);
    let v = topo.publish(&[CC4]);
    topo.wait_applied(v, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "listed");
    let (ok, out, err) = topo.cli(&["lineage", "--json"]);
    assert!(ok, "{err}");
    let old = out.split('"').nth(3).unwrap().to_string();
    assert_eq!(old.len(), 32, "{out}");
    drop(coord);

    // The database is gone but its high-water mark is not: refused, naming
    // what is wrong, and the agent keeps enforcing.
    remove_store(&topo);
    let refused = topo
        .edge
        .command(workspace_bin("c2wall-coordinator").to_str().unwrap())
        .args(["--listen", COORDINATOR, "--insecure", "--store"])
        .arg(topo.state.join("coordinator.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{msg}");
    assert!(
        msg.contains("the store is damaged") && msg.contains("replaced or re-created"),
        "{msg}"
    );

    // A new machine: no mark either. It serves a new lineage, whose versions
    // soon pass the agent's: the agent refuses them, keeps its list, and says
    // so (metric, /readyz, the coordinator's agent list).
    remove_store(&topo);
    let _ = std::fs::remove_file(topo.state.join("coordinator.db.highwater"));
    let _coord = topo.coordinator();
    topo.publish(&[OK4]);
    let v2 = topo.publish(&["192.0.2.99"]);
    assert_eq!(v2, 2);
    wait("the refusal", Duration::from_secs(10), || {
        topo.metric("c2wall_sync_refused_total{reason=\"lineage\"}")
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "still enforced");
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 10),
        10,
        "the other list is not applied"
    );
    wait("/readyz to fail", Duration::from_secs(10), || {
        topo.get_body(METRICS, "/readyz").is_none()
    });
    let why = topo.http_get("/readyz").unwrap_or_default();
    assert!(why.contains("503") && why.contains("lineage"), "{why}");

    // The operator's explicit move: the agent follows, to a lower version.
    let (ok, _, err) = topo.cli(&[
        "lineage",
        "--move-from",
        &old,
        "--up-to-version",
        &v.to_string(),
        "--reason",
        "centre store rebuilt",
    ]);
    assert!(ok, "{err}");
    topo.wait_applied(v2, Duration::from_secs(10));
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 10), 0, "the new list");
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 10);
    wait("/readyz to pass", Duration::from_secs(10), || {
        topo.get_body(METRICS, "/readyz").is_some()
    });
    let (ok, audit, _) = topo.cli(&["audit", "--json"]);
    assert!(ok && audit.contains("lineage-move"), "{audit}");
}

/// A small filesystem for the agent's state, unmounted at the end.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(tag: &str, size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(c2wall_e2e::unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir)
    }
    /// Writes until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_marks_the_saved_list_stale_and_a_restart_keeps_the_kernels_newer_list() {
    root!("a_full_disk_marks_the_saved_list_stale_and_a_restart_keeps_the_kernels_newer_list");
    let topo = Topo::new("fd");
    let small = Tmpfs::new("fdstate", "1m");
    let coord = topo.coordinator();
    let a = agent(&topo, &small.0, &[]);
    let (s, n) = (&topo.sub, &topo.net);
    let v1 = topo.publish(&["192.0.2.50"]);
    topo.wait_applied(v1, Duration::from_secs(5));
    small.fill();
    // Enforced though it cannot be saved (a delta of a few hundred entries
    // needs new pages); the agent says the saved list is stale.
    let many: Vec<String> = (0..400)
        .map(|i| format!("10.9.{}.{}", i / 256, i % 256))
        .collect();
    let mut args: Vec<&str> = many.iter().map(String::as_str).collect();
    args.push(CC4);
    let v2 = topo.publish(&args);
    topo.wait_applied(v2, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
    wait("the stale mark", Duration::from_secs(5), || {
        topo.metric("c2wall_sync_saved_list_stale") == Some(1.0)
    });
    assert!(topo.metric("c2wall_sync_persist_failures_total").unwrap() >= 1.0);
    // Restarted with the coordinator away: the kernel's newer list stays
    // (the saved one is version 1, without CC4).
    drop(coord);
    drop(a);
    let a = agent(&topo, &small.0, &[]);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "still dropped");
    assert_eq!(topo.metric("c2wall_sync_applied_version"), Some(v2 as f64));
    assert_eq!(topo.metric("c2wall_sync_saved_list_stale"), Some(1.0));
    // Space again and the coordinator back: the snapshot is applied and saved.
    std::fs::remove_file(small.0.join("filler")).unwrap();
    let _coord = topo.coordinator();
    wait(
        "the saved list to be current",
        Duration::from_secs(10),
        || topo.metric("c2wall_sync_saved_list_stale") == Some(0.0),
    );
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
    // And the next restart starts from the saved version 2.
    drop(a);
    let _a = agent(&topo, &small.0, &[]);
    assert_eq!(topo.metric("c2wall_sync_saved_list_stale"), Some(0.0));
    assert_eq!(topo.metric("c2wall_sync_applied_version"), Some(v2 as f64));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
}
