//! Feeds end to end: the coordinator pulls a configured feed, `c2wall feed
//! import` publishes a file as a source's set, agents enforce both, and a
//! truncated pull changes nothing.

use std::time::Duration;

use c2wall_e2e::{require_root, topo::*};

fn json_u64(s: &str, key: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    v.get(key)?.as_u64()
}

#[test]
fn a_configured_feed_and_a_cli_import_are_enforced_and_a_broken_pull_is_not() {
    if !require_root("a_configured_feed_and_a_cli_import_are_enforced_and_a_broken_pull_is_not") {
        return;
    }
    let topo = Topo::new("f");
    std::fs::create_dir_all(&topo.state).unwrap();
    // The centre's copy of a Spamhaus NDJSON list, pulled from disk.
    let feed_file = topo.state.join("drop_v4.json");
    let ndjson = |cidrs: &[&str], footer: bool| {
        let mut s: String = cidrs
            .iter()
            .map(|c| format!("{{\"cidr\":\"{c}\",\"sblid\":\"SBL-{c}\",\"rir\":\"arin\"}}\n"))
            .collect();
        if footer {
            s.push_str(&format!(
                "{{\"type\":\"metadata\",\"records\":{}}}\n",
                cidrs.len()
            ));
        }
        s
    };
    std::fs::write(
        &feed_file,
        ndjson(&["203.0.113.64/29", "192.0.2.0/24"], true),
    )
    .unwrap();
    let config = topo.state.join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "[[feed]]\nname = \"spamhaus-drop\"\npath = \"{}\"\nformat = \"spamhaus-json\"\n\
             interval = 3600\naction = \"drop\"\nmin_prefix_v4 = 16\n",
            feed_file.display()
        ),
    )
    .unwrap();
    let mut coord = topo.coordinator_with(&["--config", config.to_str().unwrap()]);
    let args = topo.sync_args("edge-feeds");
    let _agent = topo.agent(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (s, n) = (&topo.sub, &topo.net);

    // The feed's /29 covers CC4; the agent enforces it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, _) = topo.cli(&["feed", "list", "--json"]);
        if ok && out.contains("\"entries\":2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "feed not imported: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, hist, _) = topo.cli(&["history", "--json", "--limit", "1"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&hist).unwrap();
    let v1 = v["versions"][0]["version"].as_u64().unwrap();
    assert_eq!(v["versions"][0]["actor"], "feed:spamhaus-drop");
    topo.wait_applied(v1, Duration::from_secs(5));
    assert_eq!(
        topo.udp(s, SUB4, n, CC4, 9000, 10),
        0,
        "feed entry enforced"
    );
    assert_eq!(topo.udp(s, SUB4, n, OK4, 9000, 10), 10, "outside the /29");

    // An operator imports a ThreatFox export as its own source.
    let tf = topo.state.join("threatfox.csv");
    std::fs::write(
        &tf,
        format!(
            "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\
             \"2026-11-20 10:00:00\", \"7\", \"{OK4}:9000\", \"ip:port\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"None\", \"90\", \"None\", \"None\", \"0\", \"abuse_ch\"\n"
        ),
    )
    .unwrap();
    let (ok, out, err) = topo.cli(&[
        "feed",
        "import",
        "--json",
        "--format",
        "threatfox-csv",
        "--source",
        "threatfox",
        "--action",
        "drop",
        tf.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let v2 = json_u64(&out, "version").unwrap();
    assert_eq!(json_u64(&out, "added"), Some(1));
    topo.wait_applied(v2, Duration::from_secs(5));
    assert!(
        !topo.tcp_connects(s, SUB4, n, OK4, 9000),
        "tcp to the ThreatFox ip:port is dropped"
    );
    assert!(
        topo.tcp_connects(s, SUB4, n, OK4, 9001),
        "other ports connect"
    );
    assert_eq!(
        topo.udp(s, SUB4, n, OK4, 9000, 10),
        10,
        "udp is not the IOC"
    );

    // The feed file is cut short (no metadata record): refused on the next
    // pull (a restart pulls at once); the list stays.
    std::fs::write(&feed_file, ndjson(&["192.0.2.0/24"], false)).unwrap();
    drop(coord);
    coord = topo.coordinator_with(&["--config", config.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = topo.cli(&["feed", "list", "--json"]);
        if out.contains("truncated") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refusal: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, list, _) = topo.cli(&["list", "--json"]);
    assert!(
        list.contains("203.0.113.64/29"),
        "the previous import stays: {list}"
    );
    assert_eq!(topo.udp(s, SUB4, n, CC4, 9000, 10), 0, "still enforced");
    drop(coord);
}
