//! The formats by name, what parses each, and how often a source may be
//! pulled.

use std::{fmt, str::FromStr, time::Duration};

use crate::{abusech, misp, names, plain, spamhaus, stix, suricata, FeedError, Parsed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Plain,
    FireholNetset,
    EtCompromised,
    FeodoIps,
    SpamhausDrop,
    SpamhausJson,
    FeodoCsv,
    SslblCsv,
    ThreatfoxCsv,
    EtBotcc,
    Stix,
    Misp,
    Domains,
    Hosts,
}

pub const ALL: &[Format] = &[
    Format::Plain,
    Format::FireholNetset,
    Format::EtCompromised,
    Format::FeodoIps,
    Format::SpamhausDrop,
    Format::SpamhausJson,
    Format::FeodoCsv,
    Format::SslblCsv,
    Format::ThreatfoxCsv,
    Format::EtBotcc,
    Format::Stix,
    Format::Misp,
    Format::Domains,
    Format::Hosts,
];

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::FireholNetset => "firehol-netset",
            Format::EtCompromised => "et-compromised",
            Format::FeodoIps => "feodo-ips",
            Format::SpamhausDrop => "spamhaus-drop",
            Format::SpamhausJson => "spamhaus-json",
            Format::FeodoCsv => "feodo-csv",
            Format::SslblCsv => "sslbl-csv",
            Format::ThreatfoxCsv => "threatfox-csv",
            Format::EtBotcc => "et-botcc",
            Format::Stix => "stix",
            Format::Misp => "misp",
            Format::Domains => "domains",
            Format::Hosts => "hosts",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Format::Plain => "one IP or CIDR per line, # or ; comments",
            Format::FireholNetset => "FireHOL .netset (bare IPs are /32)",
            Format::EtCompromised => "Emerging Threats compromised-IP list",
            Format::FeodoIps => "abuse.ch Feodo Tracker IP list",
            Format::SpamhausDrop => "Spamhaus DROP/EDROP/DROPv6 text (CIDR ; SBL id)",
            Format::SpamhausJson => "Spamhaus DROP NDJSON (drop_v4.json, drop_v6.json)",
            Format::FeodoCsv => "abuse.ch Feodo Tracker CSV",
            Format::SslblCsv => "abuse.ch SSLBL botnet C2 IP CSV",
            Format::ThreatfoxCsv => "abuse.ch ThreatFox CSV (ip:port, botnet_cc)",
            Format::EtBotcc => "Emerging Threats botcc Suricata rules",
            Format::Stix => "STIX 2.0/2.1 bundle or TAXII 2.1 envelope",
            Format::Misp => "MISP event JSON",
            Format::Domains => "one domain per line (*.name: the name and below), # comments",
            Format::Hosts => "hosts file (0.0.0.0 name...): the names",
        }
    }

    /// The shortest pull interval the source's operator accepts (Spamhaus
    /// asks for at most one fetch per hour; abuse.ch regenerates every 5 min).
    pub fn min_interval(self) -> Duration {
        Duration::from_secs(match self {
            Format::SpamhausDrop
            | Format::SpamhausJson
            | Format::EtBotcc
            | Format::EtCompromised => 3600,
            Format::FeodoIps | Format::FeodoCsv | Format::SslblCsv | Format::ThreatfoxCsv => 300,
            Format::FireholNetset | Format::Misp => 300,
            Format::Plain | Format::Stix | Format::Domains | Format::Hosts => 60,
        })
    }

    /// Parses one download. `now` (Unix seconds) decides which STIX
    /// indicators are within their validity window.
    pub fn parse(self, bytes: &[u8], now: i64) -> Result<Parsed, FeedError> {
        match self {
            Format::Plain | Format::FireholNetset | Format::EtCompromised | Format::FeodoIps => {
                plain::parse(bytes)
            }
            Format::SpamhausDrop => spamhaus::parse_text(bytes),
            Format::SpamhausJson => spamhaus::parse_json(bytes),
            Format::FeodoCsv => abusech::parse_feodo_csv(bytes),
            Format::SslblCsv => abusech::parse_sslbl_csv(bytes),
            Format::ThreatfoxCsv => abusech::parse_threatfox_csv(bytes),
            Format::EtBotcc => suricata::parse(bytes),
            Format::Stix => stix::parse(bytes, now),
            Format::Misp => misp::parse(bytes),
            Format::Domains => names::parse_domains(bytes),
            Format::Hosts => names::parse_hosts(bytes),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
            format!("unknown feed format `{s}` (one of: {})", names.join(", "))
        })
    }
}
