//! The coordinator's RPZ zone at real resolvers (Debian's Unbound and BIND 9,
//! started as secondaries in a namespace): a published domain answers
//! NXDOMAIN within 2 s at both; a wildcard entry blocks the names below it
//! and not its parent; withdrawn, the name resolves again; a monitor entry
//! is not exported; a source's redirect policy sends the name to the walled
//! garden. Transfers need the TSIG key (or an allowed address), and an IXFR
//! after one change on a 100,000-name zone is under 2 KB.
//!
//! `C2WALL_RPZ_ROUNDS=100` measures publish-to-NXDOMAIN over 100 publishes
//! (the default, 10, keeps CI short).

use std::time::Duration;

use c2wall_e2e::dns::{Resolvers, RpzRig, BIND_PORT, RPZ_PORT, UNBOUND_PORT};
use c2wall_e2e::require_root;
use c2wall_e2e::stats::{ms, pct};

const WITHIN: Duration = Duration::from_secs(2);
const RESOLVERS: [(&str, u16); 2] = [("unbound", UNBOUND_PORT), ("bind", BIND_PORT)];

#[test]
fn resolvers_refuse_published_domains_within_two_seconds_and_resolve_them_again_when_withdrawn() {
    if !require_root("rpz resolvers") {
        return;
    }
    let rig = RpzRig::start(
        "rpz",
        Resolvers::BOTH,
        "source_actions = { walled = \"redirect:garden.example\" }",
        "",
    );
    for (r, port) in RESOLVERS {
        for name in ["evil.example", "www.cc.example", "cc.example", "example"] {
            assert_eq!(
                rig.resolve(port, name).0,
                "NOERROR",
                "{r}: {name} before publishing"
            );
        }
    }
    rig.cli(&["publish", "Evil.Example", "*.cc.example", "--reason", "C&C"]);
    for (r, port) in RESOLVERS {
        let t = rig.until_status(port, "evil.example", "NXDOMAIN", WITHIN);
        let t = t.unwrap_or_else(|| panic!("{r}: evil.example not refused within 2 s"));
        println!("{r}: published to NXDOMAIN in {:.0} ms", ms(t));
        // The wildcard entry covers the name and everything below it...
        assert_eq!(rig.resolve(port, "www.cc.example").0, "NXDOMAIN", "{r}");
        assert_eq!(rig.resolve(port, "cc.example").0, "NXDOMAIN", "{r}");
        // ...and nothing above or beside it.
        assert_eq!(rig.resolve(port, "example").0, "NOERROR", "{r}");
        assert_eq!(rig.resolve(port, "x.lat.example").0, "NOERROR", "{r}");
    }
    // Withdrawn: it resolves again.
    rig.cli(&["withdraw", "evil.example", "--reason", "cleaned"]);
    for (r, port) in RESOLVERS {
        let t = rig.until_status(port, "evil.example", "NOERROR", WITHIN);
        let t = t.unwrap_or_else(|| panic!("{r}: evil.example still refused 2 s after withdrawal"));
        println!("{r}: withdrawn to NOERROR in {:.0} ms", ms(t));
        assert!(
            rig.resolve(port, "evil.example").1.contains("192.0.2.10"),
            "{r}"
        );
    }
    // A monitor entry is not exported (no PASSTHRU); a source with a redirect
    // policy sends its names to the walled garden.
    rig.cli(&["publish", "watch.example", "--action", "monitor"]);
    rig.cli(&["publish", "phish.example", "--source", "walled"]);
    for (r, port) in RESOLVERS {
        let t = rig.until_status(port, "phish.example", "NOERROR", WITHIN);
        assert!(t.is_some(), "{r}");
        let until = std::time::Instant::now() + WITHIN;
        let mut answer = String::new();
        while std::time::Instant::now() < until && !answer.contains("192.0.2.99") {
            answer = rig.resolve(port, "phish.example").1;
        }
        assert!(
            answer.contains("192.0.2.99") && !answer.contains("192.0.2.14"),
            "{r}: phish.example should lead to the walled garden: {answer}"
        );
        let (status, answer) = rig.resolve(port, "watch.example");
        assert_eq!(status, "NOERROR", "{r}");
        assert!(answer.contains("192.0.2.13"), "{r}: {answer}");
    }
    // Publish-to-NXDOMAIN, one new name per round (names under *.lat.example
    // exist until listed).
    let rounds: usize = std::env::var("C2WALL_RPZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut lat: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
    for i in 0..rounds {
        let name = format!("n{i}.lat.example");
        rig.cli(&["publish", &name]);
        // Both resolvers polled in turn from the same start.
        let start = std::time::Instant::now();
        let mut seen: [Option<Duration>; 2] = [None, None];
        while seen.iter().any(Option::is_none) && start.elapsed() < WITHIN {
            for (k, (_, port)) in RESOLVERS.iter().enumerate() {
                if seen[k].is_none() && rig.resolve(*port, &name).0 == "NXDOMAIN" {
                    seen[k] = Some(start.elapsed());
                }
            }
        }
        for (k, (r, _)) in RESOLVERS.iter().enumerate() {
            lat[k].push(seen[k].unwrap_or_else(|| panic!("{r}: {name} not refused within 2 s")));
        }
    }
    for (k, (r, _)) in RESOLVERS.iter().enumerate() {
        lat[k].sort();
        println!(
            "{r}: publish to NXDOMAIN over {rounds} publishes: p50 {:.0} ms, p99 {:.0} ms \
             (the CLI call returns first; timed from then)",
            ms(pct(&lat[k], 0.50)),
            ms(pct(&lat[k], 0.99))
        );
    }
    let m = rig.metrics();
    assert!(
        m.contains("c2wall_rpz_requests_total{kind=\"ixfr\",result=\"incremental\"}"),
        "{m}"
    );
}

#[test]
fn transfers_need_the_key_or_an_allowed_address() {
    if !require_root("rpz transfers") {
        return;
    }
    let rig = RpzRig::start("rpzk", Resolvers::NONE, "", "");
    rig.cli(&["publish", "evil.example"]);
    let axfr = |from: &str, key: Option<&std::path::Path>| {
        let port = RPZ_PORT.to_string();
        let mut args = vec!["-b", from, "-p", &port, "@127.0.0.1", "c2wall.rpz", "AXFR"];
        let k;
        if let Some(p) = key {
            k = p.display().to_string();
            args.extend(["-k", &k]);
        }
        rig.dig(&args)
    };
    // 127.0.0.1 is in allow_transfer; 127.0.0.3 is not.
    let ok = axfr("127.0.0.1", None);
    assert!(ok.contains("evil.example.c2wall.rpz."), "{ok}");
    let refused = axfr("127.0.0.3", None);
    assert!(
        refused.contains("Transfer failed") && !refused.contains("evil.example.c2wall.rpz."),
        "{refused}"
    );
    let signed = axfr("127.0.0.3", Some(&rig.key_file()));
    assert!(signed.contains("evil.example.c2wall.rpz."), "{signed}");
    assert!(
        !signed.contains("tsig verify failure"),
        "dig checks our signature: {signed}"
    );
    // A key with the right name and another secret.
    let wrong = rig.dir.join("wrong.tsig");
    std::fs::write(
        &wrong,
        "key \"c2wall-rpz\" {\n\talgorithm hmac-sha256;\n\tsecret \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\";\n};\n",
    )
    .unwrap();
    let bad = axfr("127.0.0.3", Some(&wrong));
    assert!(!bad.contains("evil.example.c2wall.rpz."), "{bad}");
    let m = rig.metrics();
    for series in [
        "c2wall_rpz_requests_total{kind=\"axfr\",result=\"refused\"} 1",
        "c2wall_rpz_requests_total{kind=\"axfr\",result=\"bad_signature\"} 1",
        "c2wall_rpz_requests_total{kind=\"axfr\",result=\"ok\"} 2",
    ] {
        assert!(m.contains(series), "{series} in\n{m}");
    }
}

/// `XFR size: N records (messages M, bytes B)` from dig.
fn xfr_size(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("XFR size:"))
        .unwrap_or_else(|| panic!("no transfer: {out}"));
    let num = |after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .unwrap()
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("XFR size:"), num("bytes"))
}

#[test]
fn one_change_on_a_100k_name_zone_is_an_ixfr_under_2_kb() {
    if !require_root("rpz ixfr size") {
        return;
    }
    let rig = RpzRig::start(
        "rpzi",
        Resolvers::NONE,
        "",
        "[guards]\nbreaker_entries = 1000000\n",
    );
    let n = 100_000;
    for part in 0..4 {
        let file = rig.dir.join(format!("names-{part}.txt"));
        let text: String = (part * n / 4..(part + 1) * n / 4)
            .map(|i| format!("c{i}.botnet{}.example\n", i % 97))
            .collect();
        std::fs::write(&file, text).unwrap();
        rig.cli(&[
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--reason",
            "bulk",
        ]);
    }
    let key = rig.key_file();
    let port = RPZ_PORT.to_string();
    let soa = rig.dig(&[
        "+short",
        "-k",
        key.to_str().unwrap(),
        "-p",
        &port,
        "@127.0.0.1",
        "c2wall.rpz",
        "SOA",
    ]);
    let serial: u64 = soa
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("SOA: {soa}"));
    rig.cli(&["publish", "one-more.example"]);
    // The zone follows the version within a moment.
    let mut ixfr = String::new();
    for _ in 0..100 {
        ixfr = rig.dig(&[
            "-k",
            key.to_str().unwrap(),
            "-p",
            &port,
            "@127.0.0.1",
            "c2wall.rpz",
            &format!("IXFR={serial}"),
        ]);
        if ixfr.contains("one-more.example.c2wall.rpz.") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (records, bytes) = xfr_size(&ixfr);
    let axfr = rig.dig(&[
        "-k",
        key.to_str().unwrap(),
        "-p",
        &port,
        "@127.0.0.1",
        "c2wall.rpz",
        "AXFR",
    ]);
    let (all_records, all_bytes) = xfr_size(&axfr);
    println!(
        "one change on {n} names: IXFR {records} records, {bytes} bytes on the wire; \
         AXFR {all_records} records, {all_bytes} bytes"
    );
    assert_eq!(all_records, n as u64 + 1 + 3, "SOA, NS, every name, SOA");
    assert!(ixfr.contains("one-more.example.c2wall.rpz."), "{ixfr}");
    assert!(bytes < 2048, "IXFR of one change is {bytes} bytes");
}

#[test]
fn ip_triggers_refuse_names_that_resolve_to_a_listed_address_when_enabled() {
    if !require_root("rpz ip triggers") {
        return;
    }
    let rig = RpzRig::start("rpzp", Resolvers::BOTH, "ip_triggers = true", "");
    for (r, port) in RESOLVERS {
        assert_eq!(rig.resolve(port, "watch.example").0, "NOERROR", "{r}");
    }
    // watch.example is 192.0.2.13 in both resolvers' data.
    rig.cli(&["publish", "192.0.2.13"]);
    for (r, port) in RESOLVERS {
        let t = rig.until_status(port, "watch.example", "NXDOMAIN", WITHIN);
        assert!(
            t.is_some(),
            "{r}: a name answering a listed address is refused"
        );
        assert_eq!(rig.resolve(port, "phish.example").0, "NOERROR", "{r}");
    }
    rig.cli(&["withdraw", "192.0.2.13"]);
    for (r, port) in RESOLVERS {
        let t = rig.until_status(port, "watch.example", "NOERROR", WITHIN);
        assert!(t.is_some(), "{r}: withdrawn, it resolves again");
    }
}
