//! One address or CIDR per line: plain lists, FireHOL `.netset`, Emerging
//! Threats compromised-IP lists, the Feodo Tracker IP list. `#` and `;` start
//! comments (whole-line or trailing); a bare address is a /32 or /128. A
//! stated count (`# Number of entries: N`, `# END (N entries)`) the file does
//! not hold marks it truncated.

use c2wall_model::Target;

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

pub fn parse(bytes: &[u8]) -> Result<Parsed, FeedError> {
    one_per_line(bytes, "address or CIDR", |s| {
        text::prefix(s).map(Target::from)
    })
}

/// One `what` per line, read by `item`; `#` and `;` comments; a stated
/// count checked. The plain address lists and the domain lists.
pub(crate) fn one_per_line(
    bytes: &[u8],
    what: &str,
    item: impl Fn(&str) -> Result<Target, String>,
) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    for (n, raw) in text::lines(text::utf8(bytes)?) {
        c.stated_count(raw);
        let line = text::uncomment(raw, &['#', ';']);
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 1 {
            c.reject(
                Location::Line(n),
                format!(
                    "expected one {what}, found {} fields: `{line}`",
                    fields.len()
                ),
            );
            continue;
        }
        match item(fields[0]) {
            Ok(t) => c.entry(FeedEntry::new(t)),
            Err(e) => c.reject(Location::Line(n), e),
        }
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messy_real_world_lists() {
        let input = "\u{feff}# FireHOL-style header\r\n\
            #\r\n\
            192.0.2.1\r\n\
            198.51.100.0/24   \r\n\
            ; semicolon comment\n\
            198.51.100.0/26 # nested, kept\n\
            192.0.2.1\n\
            203.0.113.0\n\
            203.0.113.255\n\
            2001:DB8::1\n\
            2001:0db8:0000:0000:0000:0000:0000:0002\n\
            010.1.2.3\n\
            10.1.2.3/8\n\
            10.1.2\n\
            192.0.2.9 extra\n\
            192.0.2.7";
        let p = parse(input.as_bytes()).unwrap();
        let got: Vec<String> = p.entries.iter().map(|e| e.target.to_string()).collect();
        assert_eq!(
            got,
            [
                "192.0.2.1/32",
                "198.51.100.0/24",
                "198.51.100.0/26",
                "203.0.113.0/32",
                "203.0.113.255/32",
                "2001:db8::1/128",
                "2001:db8::2/128",
                "192.0.2.7/32"
            ]
        );
        assert_eq!(p.duplicates, 1);
        let rejected: Vec<String> = p.rejected.iter().map(|r| r.to_string()).collect();
        assert_eq!(rejected.len(), 4, "{rejected:?}");
        assert!(rejected[0].starts_with("line 12:") && rejected[0].contains("leading zero"));
        assert!(rejected[1].starts_with("line 13:") && rejected[1].contains("host bits"));
        assert!(rejected[2].starts_with("line 14:"));
        assert!(rejected[3].starts_with("line 15:") && rejected[3].contains("2 fields"));
        assert_eq!(p.truncated, None);
    }
}
