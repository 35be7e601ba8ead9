//! Coordinator and agent as real processes, the agent enforcing on veths
//! between namespaces.

use std::time::Duration;

use c2wall_e2e::{require_root, topo::*};

macro_rules! root {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

fn start_agent(topo: &Topo) -> c2wall_e2e::process::Guarded {
    let args = topo.sync_args("edge-test");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    topo.agent(&refs)
}

#[test]
fn publish_is_enforced_within_a_second_and_withdraw_restores() {
    root!("publish_is_enforced_within_a_second_and_withdraw_restores");
    let topo = Topo::new("p");
    let _coord = topo.coordinator();
    let _agent = start_agent(&topo);
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 20), 20, "not listed yet");
    let v = topo.publish(&[CC4, CC6, "--reference", "SBL1"]);
    let took = topo.wait_applied(v, Duration::from_secs(1));
    eprintln!("publish -> enforced in {took:?}");
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 20),
        0,
        "dropped after publish"
    );
    assert_eq!(
        topo.udp(n, CC6, s, SUB6, 9001, 20),
        0,
        "from C&C (v6) dropped too"
    );
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 20),
        20,
        "benign still delivered"
    );
    let (ok, got, err) = topo.cli(&["get", CC4, "--json"]);
    assert!(ok, "{err}");
    assert!(
        got.contains("\"effective\":{") && got.contains("\"action\":\"drop\""),
        "{got}"
    );
    let (ok, out, err) = topo.cli(&["withdraw", CC4, "--json"]);
    assert!(ok, "{err}");
    let v = json_u64(&out, "version").unwrap();
    topo.wait_applied(v, Duration::from_secs(1));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 20),
        20,
        "delivered again after withdraw"
    );
    let (ok, _, err) = topo.cli(&["get", CC4]);
    assert!(!ok && err.contains("is not listed"), "{err}");
    let (ok, agents, _) = topo.cli(&["agents", "--json"]);
    assert!(ok);
    assert!(
        agents.contains("\"agent_id\":\"edge-test\"")
            && agents.contains(&format!("\"applied_version\":{v}")),
        "{agents}"
    );
}

#[test]
fn a_large_batch_reaches_the_agent_in_parts_and_is_enforced() {
    root!("a_large_batch_reaches_the_agent_in_parts_and_is_enforced");
    let topo = Topo::new("b");
    let _coord = topo.coordinator_with(&["--breaker-entries", "1000000"]);
    let _agent = start_agent(&topo);
    let (s, n) = (&topo.sub, &topo.net);
    topo.wait_applied(0, Duration::from_secs(5));
    // 100,000 entries: a delta of about 4.5 MiB, over gRPC's 4 MiB message
    // limit unless it is sent in parts.
    let mut list: String = (0..100_000u32)
        .map(|i| format!("{}\n", std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    list.push_str(&format!("{CC4}\n"));
    let file = std::env::temp_dir().join(format!("c2wall-big-{}.txt", std::process::id()));
    std::fs::write(&file, list).unwrap();
    let v = topo.publish(&["--file", file.to_str().unwrap(), "--source", "bulk"]);
    std::fs::remove_file(&file).unwrap();
    topo.wait_applied(v, Duration::from_secs(20));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "listed in the big batch"
    );
    assert_eq!(
        topo.metric("c2wall_sync_messages_total{kind=\"snapshot\"}"),
        Some(1.0),
        "the parts were applied as one delta, no resync"
    );
}

#[test]
fn kill_9_of_the_coordinator_loses_no_acknowledged_version() {
    root!("kill_9_of_the_coordinator_loses_no_acknowledged_version");
    let topo = Topo::new("k");
    let coord = topo.coordinator();
    // Publish two-entry batches until the coordinator dies under us.
    let mut acked = Vec::new();
    let killer = {
        let pid = coord.pid();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        })
    };
    for i in 1..=2000u32 {
        let (a, b) = (
            format!("10.{}.{}.1", i / 256, i % 256),
            format!("10.{}.{}.2", i / 256, i % 256),
        );
        let (ok, out, _) = topo.cli(&["publish", "--json", &a, &b]);
        if !ok {
            break;
        }
        acked.push((json_u64(&out, "version").unwrap(), i));
    }
    killer.join().unwrap();
    drop(coord);
    assert!(
        acked.len() > 5,
        "published only {} batches before the kill",
        acked.len()
    );
    let _coord = topo.coordinator();
    let (ok, hist, err) = topo.cli(&["history", "--json", "--limit", "10000"]);
    assert!(ok, "{err}");
    for (v, _) in &acked {
        let present = [",", "}"]
            .iter()
            .any(|end| hist.contains(&format!("\"version\":{v}{end}")));
        assert!(present, "acknowledged version {v} lost");
    }
    let (ok, list, _) = topo.cli(&["list", "--json"]);
    assert!(ok);
    let last = acked.last().unwrap().1;
    for i in 1..=last + 1 {
        let a = list.contains(&format!("\"10.{}.{}.1/32\"", i / 256, i % 256));
        let b = list.contains(&format!("\"10.{}.{}.2/32\"", i / 256, i % 256));
        assert_eq!(a, b, "batch {i} is half there");
        if i <= last {
            assert!(a, "acknowledged batch {i} lost");
        }
    }
    eprintln!(
        "{} acknowledged versions, all present after kill -9 and restart",
        acked.len()
    );
}

#[test]
fn agents_catch_up_by_deltas_and_boot_from_the_persisted_list() {
    root!("agents_catch_up_by_deltas_and_boot_from_the_persisted_list");
    let topo = Topo::new("c");
    let mut coord = topo.coordinator_with(&["--publish-burst", "100"]);
    let mut agent = start_agent(&topo);
    let v = topo.publish(&[CC4]);
    topo.wait_applied(v, Duration::from_secs(1));

    // 1. Coordinator down and back (same store), versions published after.
    coord.signal(libc::SIGKILL);
    drop(coord);
    std::thread::sleep(Duration::from_millis(500));
    coord = topo.coordinator_with(&["--publish-burst", "100"]);
    let mut latest = 0;
    for i in 0..3 {
        latest = topo.publish(&[&format!("192.0.2.{}", 10 + i)]);
    }
    topo.wait_applied(latest, Duration::from_secs(20));
    let snap = topo
        .metric("c2wall_sync_messages_total{kind=\"snapshot\"}")
        .unwrap_or(0.0);
    assert_eq!(snap, 1.0, "only the first subscription needed a snapshot");

    // 2. Agent offline across many versions.
    agent.signal(libc::SIGKILL);
    drop(agent);
    for i in 0..30 {
        latest = topo.publish(&[&format!("198.51.100.{}", 100 + i)]);
    }
    agent = start_agent(&topo);
    topo.wait_applied(latest, Duration::from_secs(5));
    assert_eq!(
        topo.metric("c2wall_sync_messages_total{kind=\"snapshot\"}"),
        Some(0.0),
        "caught up without a snapshot"
    );
    assert_eq!(
        topo.metric("c2wall_sync_messages_total{kind=\"delta\"}"),
        Some(30.0)
    );
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);

    // 3. Reboot (pins gone) while the coordinator is unreachable.
    agent.signal(libc::SIGKILL);
    drop(agent);
    coord.signal(libc::SIGKILL);
    drop(coord);
    topo.detach();
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        10,
        "nothing enforced after the reboot"
    );
    let _agent = start_agent(&topo);
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "persisted list enforced without the coordinator"
    );
    assert_eq!(
        topo.metric("c2wall_sync_applied_version"),
        Some(latest as f64)
    );
    assert_eq!(topo.metric("c2wall_sync_seconds_since_contact"), Some(-1.0));
}

#[test]
fn signed_versions_are_enforced_and_an_untrusted_signer_is_refused() {
    root!("signed_versions_are_enforced_and_an_untrusted_signer_is_refused");
    let topo = Topo::new("v");
    std::fs::create_dir_all(&topo.state).unwrap();
    let (key, public) = topo.keygen("signing.key");
    let (_, stranger) = topo.keygen("other.key");
    let _coord = topo.coordinator_with(&["--signing-key", key.to_str().unwrap()]);
    let (s, n) = (&topo.sub, &topo.net);
    let with_key = |k: &str| {
        let mut a = topo.sync_args("edge-test");
        a.extend(["--trust-key".into(), k.to_string()]);
        a
    };
    let args = with_key(&public);
    let agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v = topo.publish(&[CC4]);
    topo.wait_applied(v, Duration::from_secs(5));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "signed version enforced"
    );
    drop(agent);
    // An agent that trusts another key refuses the next version and keeps
    // enforcing what it has.
    let args = with_key(&stranger);
    let _agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v2 = topo.publish(&[OK4]);
    let start = std::time::Instant::now();
    while topo
        .metric("c2wall_sync_signature_failures_total")
        .unwrap_or(0.0)
        < 1.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no refusal counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(topo.metric("c2wall_sync_applied_version").unwrap() < v2 as f64);
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 10),
        10,
        "the unverified entry is not enforced"
    );
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "the last verified list still is"
    );
}

#[test]
fn a_signing_key_rotation_with_an_overlap_keeps_the_agent_in_step() {
    root!("a_signing_key_rotation_with_an_overlap_keeps_the_agent_in_step");
    let topo = Topo::new("r");
    let (old, old_pub) = topo.keygen("old.key");
    let (new, new_pub) = topo.keygen("new.key");
    let coord = topo.coordinator_with(&["--signing-key", old.to_str().unwrap()]);
    // Overlap: the agent trusts both keys while the coordinator switches.
    let mut args = topo.sync_args("edge-test");
    args.extend([
        "--trust-key".into(),
        old_pub,
        "--trust-key".into(),
        new_pub.clone(),
    ]);
    let agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v1 = topo.publish(&[CC4]);
    topo.wait_applied(v1, Duration::from_secs(5));
    drop(coord);
    let _coord = topo.coordinator_with(&["--signing-key", new.to_str().unwrap()]);
    let v2 = topo.publish(&[CC6]);
    topo.wait_applied(v2, Duration::from_secs(10));
    drop(agent);
    // After the overlap the old key is dropped from the agents.
    let mut args = topo.sync_args("edge-test");
    args.extend(["--trust-key".into(), new_pub]);
    let _agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v3 = topo.publish(&["192.0.2.77"]);
    topo.wait_applied(v3, Duration::from_secs(10));
    assert_eq!(
        topo.metric("c2wall_sync_signature_failures_total"),
        Some(0.0)
    );
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
}

#[test]
fn the_kill_switch_takes_effect_within_a_second_survives_a_restart_and_is_audited() {
    root!("the_kill_switch_takes_effect_within_a_second_survives_a_restart_and_is_audited");
    let topo = Topo::new("x");
    let _coord = topo.coordinator();
    let mut agent = start_agent(&topo);
    let (s, n) = (&topo.sub, &topo.net);
    let v = topo.publish(&[CC4]);
    topo.wait_applied(v, Duration::from_secs(5));
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0);
    let wait_mode = |mode: &str| {
        let start = std::time::Instant::now();
        let series = format!("c2wall_mode{{mode=\"{mode}\"}}");
        while topo.metric(&series) != Some(1.0) {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{mode} not in force within 1 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    };
    // Fleet-wide off: everything passes.
    let (ok, _, err) = topo.cli(&["mode", "off", "--reason", "incident 42"]);
    assert!(ok, "{err}");
    eprintln!("off in force after {:?}", wait_mode("off"));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        10,
        "kill switch: passes"
    );
    // A restart keeps the centre's override, even before any contact.
    agent.signal(libc::SIGKILL);
    drop(agent);
    agent = start_agent(&topo);
    wait_mode("off");
    // Per agent: monitor for this one overrides the fleet's off.
    let (ok, _, err) = topo.cli(&["mode", "monitor", "--agent", "edge-test"]);
    assert!(ok, "{err}");
    wait_mode("monitor");
    // Cleared everywhere: the agent's own mode (enforce) again.
    assert!(topo.cli(&["mode", "clear", "--agent", "edge-test"]).0);
    wait_mode("off");
    assert!(topo.cli(&["mode", "clear"]).0);
    wait_mode("enforce");
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "enforcing again");
    let (ok, audit, _) = topo.cli(&["audit", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let modes: Vec<String> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "mode")
        .map(|e| {
            format!(
                "{} by {}",
                e["detail"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        modes,
        [
            "fleet: override cleared by test",
            "agent edge-test: override cleared by test",
            "agent edge-test: monitor by test",
            "fleet: off by test"
        ]
    );
    drop(agent);
}

#[test]
fn with_tokens_only_the_right_roles_get_through_end_to_end() {
    root!("with_tokens_only_the_right_roles_get_through_end_to_end");
    let topo = Topo::new("t");
    std::fs::create_dir_all(&topo.state).unwrap();
    let token = |role: &str, name: &str| {
        let out =
            std::process::Command::new(c2wall_e2e::process::workspace_bin("c2wall-coordinator"))
                .args(["token", "--role", role, "--name", name])
                .output()
                .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let t = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("token: ")
            .unwrap()
            .to_string();
        let line = text
            .lines()
            .nth(1)
            .unwrap()
            .strip_prefix("tokens file line: ")
            .unwrap()
            .to_string();
        (t, line)
    };
    let (agent_t, l1) = token("agent", "edge-test");
    let (reader_t, l2) = token("reader", "noc");
    let (admin_t, l3) = token("admin", "alice");
    let tokens = topo.state.join("tokens");
    std::fs::write(&tokens, format!("{l1}\n{l2}\n{l3}\n")).unwrap();
    let agent_file = topo.state.join("agent.token");
    std::fs::write(&agent_file, &agent_t).unwrap();
    let _coord = topo.coordinator_with(&["--tokens", tokens.to_str().unwrap()]);
    // TLS without client certificates: the tokens are what identify callers.
    let ca = topo.pki().join("ca.crt");
    let args: Vec<String> = vec![
        "--coordinator".into(),
        COORDINATOR_URL.into(),
        "--tls-ca".into(),
        ca.to_str().unwrap().into(),
        "--agent-id".into(),
        "edge-test".into(),
        "--token-file".into(),
        agent_file.to_str().unwrap().into(),
    ];
    let _agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // No token, or a reader's: refused with the code and the reason.
    let (ok, _, err) = topo.cli_as(None, &["publish", CC4]);
    assert!(!ok && err.contains("Unauthenticated"), "{err}");
    let (ok, _, err) = topo.cli_as(None, &["--token", &reader_t, "publish", CC4]);
    assert!(
        !ok && err.contains("PermissionDenied") && err.contains("noc"),
        "{err}"
    );
    let (ok, out, err) = topo.cli_as(None, &["--token", &admin_t, "publish", "--json", CC4]);
    assert!(ok, "{err}");
    let v = json_u64(&out, "version").unwrap();
    topo.wait_applied(v, Duration::from_secs(5));
    let (s, n) = (&topo.sub, &topo.net);
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "the agent's token works"
    );
    let (ok, audit, _) = topo.cli_as(None, &["--token", &reader_t, "audit", "--json"]);
    assert!(ok);
    assert!(audit.contains("\"actor\":\"alice\""), "{audit}");
}
