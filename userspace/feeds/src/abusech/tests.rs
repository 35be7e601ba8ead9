use super::*;

fn keys(p: &Parsed) -> Vec<String> {
    p.entries
        .iter()
        .map(|e| match e.scope {
            Some(s) => format!("{} {} {}", e.target, s.protocol, s.port),
            None => e.target.to_string(),
        })
        .collect()
}

#[test]
fn feodo_csv_commented_header_quotes_ports_and_footer() {
    let input = "################################################################\r\n\
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #\r\n\
################################################################\r\n\
#\r\n\
# \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\r\n\
\"2021-01-17 07:44:46\",\"51.178.161.32\",\"4643\",\"online\",\"2026-11-23\",\"Dridex\"\r\n\
\"2021-01-17 07:44:46\",\"51.178.161.32\",\"443\",\"online\",\"2026-11-23\",\"Dridex\"\r\n\
\"2021-01-17 07:44:46\",\"51.178.161.32\",\"443\",\"online\",\"2026-11-23\",\"Dridex\"\r\n\
\"2022-02-01 00:00:00\",\"192.0.2.300\",\"443\",\"offline\",\"\",\"QakBot\"\r\n\
\"2022-02-01 00:00:00\",\"192.0.2.3\",\"70000\",\"offline\",\"\",\"QakBot\"\r\n\
\"2022-02-01 00:00:00\",\"192.0.2.4\",\"443\",\"offline\"\r\n\
# END (6 entries)";
    let p = parse_feodo_csv(input.as_bytes()).unwrap();
    assert_eq!(
        keys(&p),
        ["51.178.161.32/32 tcp 4643", "51.178.161.32/32 tcp 443"]
    );
    assert_eq!(p.entries[0].category, "Dridex");
    assert_eq!(p.duplicates, 1);
    let lines: Vec<Location> = p.rejected.iter().map(|r| r.at).collect();
    assert_eq!(
        lines,
        [Location::Line(9), Location::Line(10), Location::Line(11)]
    );
    assert!(p.rejected[2].reason.contains("expected 6 fields"));
    assert_eq!(p.truncated, None, "6 records as the footer says");
    let cut = input.replace("(6 entries)", "(60 entries)");
    assert!(parse_feodo_csv(cut.as_bytes()).unwrap().truncated.is_some());
}

#[test]
fn extra_trailing_columns_are_data_and_counts_are_honoured() {
    // Feodo rows with a trailing column the header does not name, and a
    // header-stated count.
    let input = "# Number of entries: 2
# first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware
2026-11-01 00:00:00,192.0.2.30,443,online,2026-11-20,QakBot,extra note
2026-11-01 00:00:00,192.0.2.31,8080,online,2026-11-20,Emotet
";
    let p = parse_feodo_csv(input.as_bytes()).unwrap();
    assert_eq!(
        keys(&p),
        ["192.0.2.30/32 tcp 443", "192.0.2.31/32 tcp 8080"]
    );
    assert_eq!(p.entries[0].category, "QakBot");
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(p.truncated, None);
    let cut = input.replace("entries: 2", "entries: 3");
    assert!(parse_feodo_csv(cut.as_bytes()).unwrap().truncated.is_some());
    // SSLBL without a header and a malware-name column added at the end.
    let sslbl = "2026-11-01 10:00:00,192.0.2.32,443,Dridex
";
    let p = parse_sslbl_csv(sslbl.as_bytes()).unwrap();
    assert_eq!(keys(&p), ["192.0.2.32/32 tcp 443"]);
    // An older headerless Feodo layout without the status column.
    let old = "2019-01-01 00:00:00,192.0.2.33,447,2019-02-01
";
    assert_eq!(
        keys(&parse_feodo_csv(old.as_bytes()).unwrap()),
        ["192.0.2.33/32 tcp 447"]
    );
    // A named row missing columns is still an error.
    let broken = "# dst_ip,dst_port,malware
192.0.2.34
";
    assert_eq!(
        parse_feodo_csv(broken.as_bytes()).unwrap().rejected.len(),
        1
    );
}

#[test]
fn sslbl_current_and_older_column_order() {
    let now = "# Firstseen,DstIP,DstPort\n2026-11-01 10:00:00,192.0.2.10,443\n2026-11-01 10:00:00,192.0.2.10,8443";
    assert_eq!(
        keys(&parse_sslbl_csv(now.as_bytes()).unwrap()),
        ["192.0.2.10/32 tcp 443", "192.0.2.10/32 tcp 8443"]
    );
    let old = "DstIP,DstPort,Firstseen\n192.0.2.11,447,2016-01-01 00:00:00\n";
    assert_eq!(
        keys(&parse_sslbl_csv(old.as_bytes()).unwrap()),
        ["192.0.2.11/32 tcp 447"]
    );
    let bare = "192.0.2.12,4443,2016-01-01 00:00:00\r\n2016-01-01 00:00:00,192.0.2.13,993";
    assert_eq!(
        keys(&parse_sslbl_csv(bare.as_bytes()).unwrap()),
        ["192.0.2.12/32 tcp 4443", "192.0.2.13/32 tcp 993"]
    );
}

#[test]
fn threatfox_filters_types_and_reads_v6_and_none() {
    let input = r#"################################################################
# ThreatFox IOCs: CSV export                                   #
################################################################
#
# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","reference","tags","anonymous","reporter"
"2026-11-20 10:00:00", "1001", "192.0.2.20:443", "ip:port", "botnet_cc", "win.cobalt_strike", "None", "Cobalt Strike", "None", "100", "None", "c2", "0", "abuse_ch"
"2026-11-20 10:00:00", "1002", "[2001:DB8::20]:8080", "ip:port", "botnet_cc", "elf.mirai", "None", "Mirai", "None", "75", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1003", "evil.example", "domain", "botnet_cc", "win.x", "None", "X", "None", "50", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1007", "http://Gate.Example:8080/panel/", "url", "botnet_cc", "win.x", "None", "X", "None", "50", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1008", "0123abcd", "md5_hash", "botnet_cc", "win.x", "None", "X", "None", "50", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1004", "192.0.2.21:80", "ip:port", "payload_delivery", "win.x", "None", "X", "None", "50", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1005", "192.0.2.22:0", "ip:port", "botnet_cc", "win.x", "None", "X", "None", "50", "None", "None", "0", "abuse_ch"
"2026-11-20 10:00:00", "1006", "192.0.2.23:443", "ip:port", "botnet_cc", "win.x", "None", "None", "None", "None", "None", "None", "0", "abuse_ch"
"#;
    let p = parse_threatfox_csv(input.as_bytes()).unwrap();
    assert_eq!(
        keys(&p),
        [
            "192.0.2.20/32 tcp 443",
            "2001:db8::20/128 tcp 8080",
            "evil.example",
            "gate.example",
            "192.0.2.23/32 tcp 443"
        ]
    );
    assert_eq!(p.entries[0].reference, "threatfox:1001");
    assert_eq!(p.entries[1].category, "Mirai");
    assert_eq!(p.entries[1].confidence, Some(75));
    assert_eq!(
        (p.entries[4].category.as_str(), p.entries[4].confidence),
        ("", None)
    );
    assert_eq!(p.skipped, 2, "payload delivery and a hash");
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].at, Location::Line(12));
}
