//! The Debian packages (scripts/package.sh): install, upgrade with traffic
//! flowing, remove. This test installs packages on the machine it runs on,
//! so it is #[ignore]d in the parallel suite and scripts/test.sh runs it
//! alone afterwards (`cargo test --workspace --test packages -- --ignored`).

use std::{path::Path, process::Command, time::Duration};

use c2wall_e2e::{
    flow::Flow,
    process::{capture, workspace_bin, Guarded},
    require_root,
    topo::*,
};

const PACKAGES: [&str; 3] = ["c2wall-agent", "c2wall-coordinator", "c2wall"];

fn run(cmd: &str, args: &[&str]) -> String {
    let (ok, text) = capture(Command::new(cmd).args(args));
    assert!(ok, "{cmd} {args:?}: {text}");
    text
}

fn installed_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", pkg])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.strip_prefix("install ok installed ").map(str::to_string)
}

/// Purges the test's packages however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").arg("--purge").args(PACKAGES).output();
    }
}

fn build(version: &str, out: &Path) {
    let bin_dir = workspace_bin("c2wall-agent");
    let bin_dir = bin_dir.parent().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/package.sh");
    let text = run(
        "bash",
        &[
            script,
            "--version",
            version,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--compress",
            "none",
        ],
    );
    for p in PACKAGES {
        assert!(text.contains(&format!("{p}_{version}_")), "{text}");
    }
}

fn debs(dir: &Path, version: &str) -> Vec<String> {
    let arch = run("dpkg", &["--print-architecture"]);
    PACKAGES
        .iter()
        .map(|p| {
            dir.join(format!("{p}_{version}_{}.deb", arch.trim()))
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// The installed agent, as its unit starts it, in the edge namespace.
fn start_installed_agent(topo: &Topo) -> Guarded {
    let mut c = topo.edge.command("/usr/bin/c2wall-agent");
    c.args(["--config", "/etc/c2wall/agent.toml"])
        .stdin(std::process::Stdio::null());
    if std::env::var_os("C2WALL_TEST_VERBOSE").is_none() {
        c.stderr(std::process::Stdio::null());
    }
    let agent = Guarded::spawn(c);
    topo.wait_ready(Duration::from_secs(20));
    agent
}

#[test]
#[ignore = "installs packages on this machine: scripts/test.sh runs it alone"]
fn upgrade_keeps_enforcing_and_removal_detaches() {
    if !require_root("upgrade_keeps_enforcing_and_removal_detaches") {
        return;
    }
    for p in PACKAGES {
        if let Some(v) = installed_version(p) {
            panic!("{p} {v} is installed here already; this test would replace it");
        }
    }
    let topo = Topo::new("pk");
    let dir = topo.state.join("debs");
    std::fs::create_dir_all(&dir).unwrap();
    build("0.1.0+n1", &dir);
    build("0.1.0+n2", &dir);

    let _purge = Purge;
    let mut install = vec!["-i", "--force-confold"];
    let n1 = debs(&dir, "0.1.0+n1");
    install.extend(n1.iter().map(String::as_str));
    run("dpkg", &install);
    assert_eq!(
        installed_version("c2wall-agent").as_deref(),
        Some("0.1.0+n1")
    );
    // The coordinator's system user owns its state directory.
    run("getent", &["passwd", "c2wall"]);
    let owner = run("stat", &["-c", "%U", "/var/lib/c2wall-coordinator"]);
    assert_eq!(owner.trim(), "c2wall");
    let unit = std::fs::read_to_string("/lib/systemd/system/c2wall-agent.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/c2wall-agent"), "{unit}");

    // The operator's config: this test's interfaces, pins and list.
    let list = topo.write_list("blocklist.txt", &format!("{CC4}\n"));
    let config = format!(
        "interfaces = [\"e0\", \"e1\"]\nblocklists = [\"{}\"]\npin_dir = \"{}\"\n\
         state_dir = \"{}\"\nmetrics_addr = \"{METRICS}\"\n",
        list.display(),
        topo.pins.0.display(),
        topo.state.display()
    );
    std::fs::write("/etc/c2wall/agent.toml", &config).unwrap();
    let agent = start_installed_agent(&topo);
    assert_eq!(topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20), 0);

    let flow = Flow::start(&topo, &[CC4, OK4]);
    std::thread::sleep(Duration::from_millis(300));
    let mut install = vec!["-i", "--force-confold"];
    let n2 = debs(&dir, "0.1.0+n2");
    install.extend(n2.iter().map(String::as_str));
    run("dpkg", &install);
    // What `systemctl try-restart` (the postinst) does on a host with systemd.
    agent.signal(libc::SIGTERM);
    drop(agent);
    let agent = start_installed_agent(&topo);
    std::thread::sleep(Duration::from_millis(300));
    flow.finish_without_gap("during the upgrade", 300);
    assert_eq!(
        installed_version("c2wall-agent").as_deref(),
        Some("0.1.0+n2")
    );
    assert_eq!(
        std::fs::read_to_string("/etc/c2wall/agent.toml").unwrap(),
        config,
        "the operator's config survives the upgrade"
    );

    // Removal: the unit is stopped (systemd would), then prerm detaches.
    agent.signal(libc::SIGTERM);
    drop(agent);
    assert_eq!(
        topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20),
        0,
        "stopped, still enforcing"
    );
    run("apt-get", &["remove", "-y", "c2wall-agent"]);
    assert!(!topo.pins.0.exists(), "removal unpinned everything");
    assert!(
        topo.udp(&topo.sub, SUB4, &topo.net, CC4, 9000, 20) > 15,
        "traffic flows after removal"
    );
    assert!(
        Path::new("/etc/c2wall/agent.toml").exists(),
        "remove keeps the config"
    );
    run(
        "dpkg",
        &["--purge", "c2wall-agent", "c2wall-coordinator", "c2wall"],
    );
    assert!(
        !Path::new("/etc/c2wall/agent.toml").exists(),
        "purge removes the config"
    );
    assert!(!Path::new("/var/lib/c2wall-coordinator").exists());
    assert!(Command::new("getent")
        .args(["passwd", "c2wall"])
        .output()
        .unwrap()
        .stdout
        .is_empty());
}
