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
    for (n, line) in text::lines(text::utf8(bytes)?) {
        if line.is_empty() {
            continue;
        }
        if let Some(body) = line.strip_prefix('#') {
            // A stated count (`# END (N entries)`) or perhaps a header.
            if !c.stated_count(line) {
                if let Ok(f) = csv::fields(body.trim()) {
                    cols.header(&f, wanted);
                }
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
mod tests;
