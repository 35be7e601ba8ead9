//! Emerging Threats `botcc` Suricata/Snort rules: the destination address
//! group of each rule is the list (`alert ip $HOME_NET any -> [a,b,...] any
//! (msg:...; sid:N; ...)`). The tcp and udp variants repeat the same groups;
//! repeats fold. Commented-out rules are ignored; negated elements (`!a`) and
//! variables (`$EXTERNAL_NET`) are not addresses to block.

use c2wall_model::Protocol;

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

pub fn parse(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    for (n, line) in text::lines(text::utf8(bytes)?) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((head, opts)) = line.split_once('(') else {
            c.reject(Location::Line(n), "not a rule: no options `( ... )`");
            continue;
        };
        let h: Vec<&str> = head.split_whitespace().collect();
        // action proto src sport -> dst dport
        if h.len() != 7 || !matches!(h[4], "->" | "<>") {
            c.reject(
                Location::Line(n),
                format!("not a rule header: `{}`", head.trim()),
            );
            continue;
        }
        let msg = option(opts, "msg").unwrap_or_default();
        let sid = option(opts, "sid").unwrap_or_default();
        let scope = match (h[1], text::port(h[6])) {
            ("tcp", Ok(p)) => text::scope(Protocol::Tcp, p),
            ("udp", Ok(p)) => text::scope(Protocol::Udp, p),
            _ => None,
        };
        let group: Vec<&str> = h[5]
            .split(['[', ']', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let addrs: Vec<&str> = group
            .into_iter()
            .filter(|s| !s.starts_with('!') && !s.starts_with('$') && *s != "any")
            .collect();
        if addrs.is_empty() {
            c.skip();
            continue;
        }
        for a in addrs {
            match text::prefix(a) {
                Ok(p) => {
                    let mut e = FeedEntry::new(p);
                    e.scope = scope;
                    e.reference = if sid.is_empty() {
                        String::new()
                    } else {
                        format!("sid:{sid}")
                    };
                    e.category = msg.clone();
                    c.entry(e);
                }
                Err(e) => c.reject(Location::Line(n), e),
            }
        }
    }
    Ok(c.finish())
}

/// The value of `name:value;` in a rule's options, quotes removed.
fn option(opts: &str, name: &str) -> Option<String> {
    opts.split(';').find_map(|o| {
        let (k, v) = o.split_once(':')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn botcc_rules_dedupe_across_tcp_and_udp_and_skip_variables() {
        let input = "# Emerging Threats botcc\r\n\
#alert ip $HOME_NET any -> [192.0.2.99] any (msg:\"disabled\"; sid:1;)\r\n\
alert ip $HOME_NET any -> [192.0.2.1,192.0.2.2,198.51.100.0/24] any (msg:\"ET CNC Feodo Tracker Reported CnC Server group 1\"; reference:url,doc.emergingthreats.net; sid:2404301; rev:5000;)\r\n\
alert tcp $HOME_NET any -> [192.0.2.1,192.0.2.2,198.51.100.0/24] any (msg:\"ET CNC Feodo Tracker Reported CnC Server group 1\"; sid:2404302; rev:5000;)\r\n\
alert udp $HOME_NET any -> [192.0.2.1,!192.0.2.3,010.0.0.1] any (msg:\"ET CNC group 2\"; sid:2404303;)\r\n\
alert ip $HOME_NET any -> $EXTERNAL_NET any (msg:\"no group\"; sid:2404304;)\r\n\
alert ip $HOME_NET any -> 203.0.113.5 53 (msg:\"one\"; sid:2404305;)\r\n\
alert ip broken";
        let p = parse(input.as_bytes()).unwrap();
        let got: Vec<String> = p.entries.iter().map(|e| e.target.to_string()).collect();
        assert_eq!(
            got,
            [
                "192.0.2.1/32",
                "192.0.2.2/32",
                "198.51.100.0/24",
                "203.0.113.5/32"
            ]
        );
        assert_eq!(p.entries[0].reference, "sid:2404301");
        assert!(p.entries[0].category.contains("Feodo"));
        assert_eq!(p.duplicates, 4);
        assert_eq!(p.skipped, 1);
        let at: Vec<Location> = p.rejected.iter().map(|r| r.at).collect();
        assert_eq!(at, [Location::Line(5), Location::Line(8)]);
    }
}
