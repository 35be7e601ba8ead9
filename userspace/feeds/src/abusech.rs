//! abuse.ch exports: Feodo Tracker CSV, SSLBL botnet C2 IP CSV, ThreatFox CSV.
//!
//! Columns are found by the header's names when there is a header (commented
//! with `#` or bare), else by the documented default order, so older exports
//! with another column order still parse. abuse.ch lists C2 endpoints as
//! `IP, port` over TCP: entries carry a `tcp PORT` scope (the importer may
//! widen them to the address). A `# END (N entries)` footer is checked.

use c2wall_model::Protocol;

use crate::{csv, text, Collector, FeedEntry, FeedError, Location, Parsed};

/// Column positions by name, from the first line that names them all.
struct Columns {
    names: &'static [&'static str],
    at: Vec<usize>,
    width: usize,
    /// Whether a header named the columns (else the default order is a guess).
    named: bool,
}

impl Columns {
    fn new(names: &'static [&'static str]) -> Self {
        Columns {
            names,
            at: (0..names.len()).collect(),
            width: names.len(),
            named: false,
        }
    }

    /// Takes a header line if it is one (it names every wanted column).
    fn header(&mut self, fields: &[String], wanted: &[&str]) -> bool {
        let norm = |s: &str| s.trim().to_ascii_lowercase().replace([' ', '_'], "");
        let names: Vec<String> = fields.iter().map(|f| norm(f)).collect();
        let at: Option<Vec<usize>> = self
            .names
            .iter()
            .map(|n| {
                let at = names.iter().position(|x| *x == norm(n));
                if wanted.contains(n) {
                    at
                } else {
                    Some(at.unwrap_or(usize::MAX))
                }
            })
            .collect();
        match at {
            Some(at) => {
                self.at = at;
                self.width = fields.len();
                self.named = true;
                true
            }
            None => false,
        }
    }

    /// Fields a row needs to hold every wanted column.
    fn needed(&self, wanted: &[&str]) -> usize {
        wanted
            .iter()
            .filter_map(|w| self.names.iter().position(|n| n == w))
            .map(|i| self.at[i] + 1)
            .max()
            .unwrap_or(0)
    }

    fn get<'a>(&self, fields: &'a [String], name: &str) -> &'a str {
        let i = self.names.iter().position(|n| *n == name).expect("known");
        fields.get(self.at[i]).map(|s| s.as_str()).unwrap_or("")
    }
}

/// `# END (123 entries)` or `# Number of entries: 123`.
fn footer(line: &str) -> Option<usize> {
    text::stated_count(line)
}

fn nullable(s: &str) -> &str {
    if s == "None" || s == "null" {
        ""
    } else {
        s
    }
}

/// Runs `row` over the data lines, handling comments, headers and footers.
fn rows(
    bytes: &[u8],
    mut cols: Columns,
    wanted: &[&str],
    mut row: impl FnMut(&Columns, &[String], usize, &mut Collector),
) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    let mut end = None;
    for (n, line) in text::lines(text::utf8(bytes)?) {
        if line.is_empty() {
            continue;
        }
        if let Some(body) = line.strip_prefix('#') {
            if let Some(k) = footer(line) {
                end = Some(k);
            } else if let Ok(f) = csv::fields(body.trim()) {
                cols.header(&f, wanted);
            }
            continue;
        }
        let fields = match csv::fields(line) {
            Ok(f) => f,
            Err(e) => {
                c.reject(Location::Line(n), e);
                continue;
            }
        };
        if cols.header(&fields, wanted) {
            continue;
        }
        // A trailing column the header (or the default layout) does not
        // name is data, not an error (abuse.ch lists have gained columns
        // over the years); a row missing a named column is broken.
        // Without a header, an older, shorter layout is read as long as the
        // wanted columns are there.
        let short = if cols.named {
            fields.len() < cols.width
        } else {
            cols.needed(wanted) > fields.len()
        };
        if short {
            c.reject(
                Location::Line(n),
                format!("expected {} fields, found {}", cols.width, fields.len()),
            );
            continue;
        }
        row(&cols, &fields, n, &mut c);
    }
    if let Some(k) = end {
        if k != c.records() {
            c.truncated(format!(
                "the footer says {k} entries, the file holds {}",
                c.records()
            ));
        }
    }
    Ok(c.finish())
}

fn ip_port(ip: &str, port: &str) -> Result<FeedEntry, String> {
    let mut e = FeedEntry::new(c2wall_model::Prefix::host(text::address(ip)?));
    e.scope = text::scope(Protocol::Tcp, text::port(port)?);
    Ok(e)
}

const FEODO: &[&str] = &[
    "first_seen_utc",
    "dst_ip",
    "dst_port",
    "c2_status",
    "last_online",
    "malware",
];

/// Feodo Tracker `ipblocklist.csv`.
pub fn parse_feodo_csv(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let wanted = &["dst_ip", "dst_port"];
    rows(
        bytes,
        Columns::new(FEODO),
        wanted,
        |cols, f, n, c| match ip_port(cols.get(f, "dst_ip"), cols.get(f, "dst_port")) {
            Ok(mut e) => {
                e.category = cols.get(f, "malware").to_string();
                c.entry(e);
            }
            Err(e) => c.reject(Location::Line(n), e),
        },
    )
}

const SSLBL: &[&str] = &["firstseen", "dstip", "dstport"];

/// SSLBL `sslipblacklist.csv` (`Firstseen,DstIP,DstPort`). Other column
/// orders are read by their header, or without one by content: the field that
/// is an address and the field that is a port.
pub fn parse_sslbl_csv(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let wanted = &["dstip", "dstport"];
    rows(bytes, Columns::new(SSLBL), wanted, |cols, f, n, c| {
        let (mut ip, mut port) = (cols.get(f, "dstip"), cols.get(f, "dstport"));
        if !cols.named && text::address(ip).is_err() {
            if let Some(i) = f.iter().position(|x| text::address(x).is_ok()) {
                ip = &f[i];
                if let Some((_, p)) = f
                    .iter()
                    .enumerate()
                    .find(|(j, x)| *j != i && text::port(x).is_ok())
                {
                    port = p;
                }
            }
        }
        match ip_port(ip, port) {
            Ok(mut e) => {
                e.reference = "sslbl".into();
                c.entry(e);
            }
            Err(e) => c.reject(Location::Line(n), e),
        }
    })
}

const THREATFOX: &[&str] = &[
    "first_seen_utc",
    "ioc_id",
    "ioc_value",
    "ioc_type",
    "threat_type",
    "fk_malware",
    "malware_alias",
    "malware_printable",
    "last_seen_utc",
    "confidence_level",
    "reference",
    "tags",
    "anonymous",
    "reporter",
];

/// ThreatFox CSV export, IOCs of threat type `botnet_cc`: `ip:port` (the
/// address with its port), `domain` (the name) and `url` (its host, a name or
/// an address); other IOC types (hashes) and threat types are skipped.
pub fn parse_threatfox_csv(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let wanted = &["ioc_value", "ioc_type", "threat_type"];
    rows(bytes, Columns::new(THREATFOX), wanted, |cols, f, n, c| {
        let kind = cols.get(f, "ioc_type");
        if !matches!(kind, "ip:port" | "domain" | "url")
            || cols.get(f, "threat_type") != "botnet_cc"
        {
            c.skip();
            return;
        }
        let confidence = match nullable(cols.get(f, "confidence_level")) {
            "" => None,
            s => match s.parse::<u8>().ok().filter(|c| *c <= 100) {
                Some(v) => Some(v),
                None => {
                    c.reject(
                        Location::Line(n),
                        format!("confidence_level `{s}` is not 0-100"),
                    );
                    return;
                }
            },
        };
        let value = cols.get(f, "ioc_value");
        let parsed = match kind {
            "domain" => text::domain(value).map(|d| (d.into(), None)),
            "url" => text::url_host(value).map(|t| (t, None)),
            _ => text::addr_port(value).map(|(p, port)| {
                (
                    c2wall_model::Target::from(p),
                    text::scope(Protocol::Tcp, port),
                )
            }),
        };
        match parsed {
            Ok((target, scope)) => {
                let mut e = FeedEntry::new(target);
                e.scope = scope;
                e.reference = format!("threatfox:{}", cols.get(f, "ioc_id"));
                e.category = nullable(cols.get(f, "malware_printable")).to_string();
                e.confidence = confidence;
                c.entry(e);
            }
            Err(e) => c.reject(Location::Line(n), e),
        }
    })
}

#[cfg(test)]
mod tests {
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
}
