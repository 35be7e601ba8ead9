//! Domain lists: one name per line (`evil.example`, or `*.evil.example` for
//! the name and everything below it), and hosts files (`0.0.0.0 evil.example
//! www.evil.example`: the names, never the sink address; the loopback names
//! every hosts file starts with are skipped). `#` starts a comment; a stated
//! entry count (`# Number of entries: N`, `# END (N entries)`) that the file
//! does not hold marks it truncated.

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

/// Names a hosts file maps for the machine itself, not for blocking.
const HOSTS_OWN: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

pub fn parse_domains(bytes: &[u8]) -> Result<Parsed, FeedError> {
    crate::plain::one_per_line(bytes, "name", |s| text::domain(s).map(Into::into))
}

pub fn parse_hosts(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let mut c = Collector::new();
    for (n, raw) in text::lines(text::utf8(bytes)?) {
        c.stated_count(raw);
        let line = text::uncomment(raw, &['#']);
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let addr = fields.next().unwrap_or("");
        if text::address(addr).is_err() {
            c.reject(
                Location::Line(n),
                format!("`{addr}` is not an address (hosts lines are `ADDRESS NAME...`)"),
            );
            continue;
        }
        let names: Vec<&str> = fields.collect();
        if names.is_empty() {
            c.reject(
                Location::Line(n),
                format!("`{line}`: an address without a name"),
            );
            continue;
        }
        for name in names {
            if HOSTS_OWN.contains(&name.to_ascii_lowercase().as_str()) {
                c.skip();
                continue;
            }
            match text::domain(name) {
                Ok(d) if !d.subtree => c.entry(FeedEntry::new(d)),
                Ok(_) => c.reject(
                    Location::Line(n),
                    format!("`{name}`: hosts files name hosts, not wildcards"),
                ),
                Err(e) => c.reject(Location::Line(n), e),
            }
        }
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Parsed) -> Vec<String> {
        p.entries.iter().map(|e| e.target.to_string()).collect()
    }

    #[test]
    fn domain_list_normalises_rejects_and_counts() {
        let input = "\u{feff}# C2 domains\r\n# Number of entries: 5\r\n\
            Evil.Example.\r\n*.cc.example ; wildcard\r\nevil.example\r\n\
            bad..example\r\ntwo names.example\r\n";
        let p = parse_domains(input.as_bytes()).unwrap();
        assert_eq!(names(&p), ["evil.example", "*.cc.example"]);
        assert_eq!(p.duplicates, 1);
        let at: Vec<Location> = p.rejected.iter().map(|r| r.at).collect();
        assert_eq!(at, [Location::Line(6), Location::Line(7)]);
        assert!(
            p.rejected[0].reason.contains("label `` is empty"),
            "{}",
            p.rejected[0].reason
        );
        assert_eq!(p.truncated, None, "5 records as stated");
        let cut = input.replace("entries: 5", "entries: 9");
        assert!(parse_domains(cut.as_bytes()).unwrap().truncated.is_some());
    }

    #[test]
    fn hosts_file_takes_the_names_not_the_sink() {
        let input = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
            0.0.0.0 evil.example www.evil.example # trailing\n\
            127.0.0.1\tc2.example\nnot-an-ip bad.example\n0.0.0.0 *.x.example\n";
        let p = parse_hosts(input.as_bytes()).unwrap();
        assert_eq!(
            names(&p),
            ["evil.example", "www.evil.example", "c2.example"]
        );
        assert_eq!(p.skipped, 3);
        let at: Vec<Location> = p.rejected.iter().map(|r| r.at).collect();
        assert_eq!(at, [Location::Line(5), Location::Line(6)]);
    }
}
