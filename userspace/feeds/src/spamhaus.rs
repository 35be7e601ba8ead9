//! Spamhaus DROP / EDROP / DROPv6: the text lists (`CIDR ; SBLnnnnnn`, `;`
//! comments whole-line and inline, an optional `; EOF`) and the NDJSON lists
//! (`drop_v4.json`: one object per line with `cidr`, `sblid`, `rir`, and a
//! final metadata object whose `records` count must match).

use serde::Deserialize;

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

pub fn parse_text(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    for (n, line) in text::lines(text::utf8(bytes)?) {
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let (cidr, rest) = match line.split_once(';') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (line, ""),
        };
        if cidr.split_whitespace().count() != 1 {
            c.reject(
                Location::Line(n),
                format!("expected `CIDR ; SBL id`: `{line}`"),
            );
            continue;
        }
        match text::prefix(cidr) {
            Ok(p) => {
                let mut e = FeedEntry::new(p);
                e.reference = rest.split_whitespace().next().unwrap_or("").to_string();
                c.entry(e);
            }
            Err(e) => c.reject(Location::Line(n), e),
        }
    }
    Ok(c.finish())
}

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    r#type: Option<String>,
    cidr: Option<String>,
    sblid: Option<String>,
    records: Option<u64>,
}

pub fn parse_json(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    let mut declared = None;
    for (n, line) in text::lines(text::utf8(bytes)?) {
        if line.is_empty() {
            continue;
        }
        let r: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                c.reject(Location::Line(n), format!("not a JSON record: {e}"));
                continue;
            }
        };
        if r.r#type.as_deref() == Some("metadata") {
            declared = r.records;
            continue;
        }
        let Some(cidr) = r.cidr else {
            c.reject(Location::Line(n), "record without `cidr`");
            continue;
        };
        match text::prefix(cidr.trim()) {
            Ok(p) => {
                let mut e = FeedEntry::new(p);
                e.reference = r.sblid.unwrap_or_default();
                c.entry(e);
            }
            Err(e) => c.reject(Location::Line(n), e),
        }
    }
    match declared {
        None => c.truncated("no metadata record (the download may be cut short)".into()),
        Some(d) if d as usize != c.records() => c.truncated(format!(
            "metadata says {d} records, the file holds {}",
            c.records()
        )),
        _ => {}
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_text_with_comments_and_eof() {
        let input = "; Spamhaus DROP List 2026/11/23 - (c) 2026 The Spamhaus Project\r\n\
            ; Last-Modified: Mon, 23 Nov 2026 10:00:00 GMT\r\n\
            1.10.16.0/20 ; SBL256894\r\n\
            2.56.192.0/22 ; SBL459831   \r\n\
            2001:db8:1::/48 ; SBL600001\r\n\
            1.10.16.1/20 ; SBL1\r\n\
            ; EOF";
        let p = parse_text(input.as_bytes()).unwrap();
        let got: Vec<(String, &str)> = p
            .entries
            .iter()
            .map(|e| (e.target.to_string(), e.reference.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("1.10.16.0/20".into(), "SBL256894"),
                ("2.56.192.0/22".into(), "SBL459831"),
                ("2001:db8:1::/48".into(), "SBL600001")
            ]
        );
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].at, Location::Line(6));
    }

    #[test]
    fn ndjson_with_a_matching_footer_and_a_truncated_one() {
        let full = r#"{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}
{"cidr":"2.56.192.0/22","sblid":"SBL459831","rir":"ripencc"}
{"cidr":"2.56.192.1/22","sblid":"SBL1","rir":"ripencc"}
{"type":"metadata","timestamp":1700000000,"size":123,"records":3,"copyright":"(c) 2026 The Spamhaus Project SLU","terms":"https://www.spamhaus.org/drop/terms/"}"#;
        let p = parse_json(full.as_bytes()).unwrap();
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[1].reference, "SBL459831");
        assert_eq!(p.rejected.len(), 1, "host bits set");
        assert_eq!(p.truncated, None);
        let cut: String = full.lines().take(2).collect::<Vec<_>>().join("\n");
        let p = parse_json(cut.as_bytes()).unwrap();
        assert!(p.truncated.unwrap().contains("no metadata"));
        let short = full.replace("\"records\":3", "\"records\":40");
        let p = parse_json(short.as_bytes()).unwrap();
        assert!(p.truncated.unwrap().contains("says 40 records"));
    }
}
