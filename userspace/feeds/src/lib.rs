//! Threat-feed parsers. Each format is a module that turns the bytes of one
//! download into entries and rejected lines; none does I/O, so fetching,
//! scheduling and publishing live elsewhere and every parser is tested on
//! bytes alone.
//!
//! Every parser accepts the mess real feeds contain (CRLF, no final newline,
//! trailing spaces, the format's comment styles, commented or bare headers,
//! IPv6 in any case and compression, duplicate rows, nested prefixes) and
//! rejects, with the line (or JSON object) number and the reason: malformed
//! addresses, leading-zero octets, host bits set, ports out of range, wrong
//! field counts. A count footer or metadata record that disagrees with what
//! was parsed marks the import as truncated.

pub mod abusech;
mod collect;
mod csv;
pub mod format;
pub mod misp;
pub mod names;
pub mod plain;
pub mod policy;
pub mod spamhaus;
pub mod stix;
pub mod suricata;
pub mod text;

use std::fmt;

use c2wall_model::{PortScope, Target};

pub use collect::Collector;
pub use format::Format;

/// One address, prefix or domain a feed lists, with what the feed says
/// about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub target: Target,
    /// The C&C-side protocol and port, when the feed gives one.
    pub scope: Option<PortScope>,
    /// The feed's id for the listing (SBL id, ThreatFox IOC id, STIX id, ...).
    pub reference: String,
    /// Malware family or category, when the feed names one.
    pub category: String,
    /// The feed's confidence 0-100, when it gives one.
    pub confidence: Option<u8>,
    /// Unix seconds after which the feed no longer vouches for it.
    pub valid_until: Option<i64>,
}

impl FeedEntry {
    pub fn new(target: impl Into<Target>) -> Self {
        FeedEntry {
            target: target.into(),
            scope: None,
            reference: String::new(),
            category: String::new(),
            confidence: None,
            valid_until: None,
        }
    }
}

/// Where in the input something was found: a line (text formats) or an
/// object of a JSON document (1-based both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Line(usize),
    Object(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Object(n) => write!(f, "object {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub at: Location,
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// The outcome of parsing one download.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<FeedEntry>,
    pub rejected: Vec<Rejected>,
    /// Records that are valid but not for us (another IOC type, threat type,
    /// revoked or expired indicators, rules without a destination address).
    pub skipped: usize,
    /// Exact repeats of an earlier record (same prefix and port scope).
    pub duplicates: usize,
    /// Set when the input says it holds more (or fewer) records than it does.
    pub truncated: Option<String>,
}

impl Parsed {
    /// Records looked at: accepted, repeated, rejected.
    pub fn records(&self) -> usize {
        self.entries.len() + self.duplicates + self.rejected.len()
    }
}

/// A whole document that cannot be read at all (not JSON, wrong encoding).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedError {
    #[error("not UTF-8 text (byte {0})")]
    NotText(usize),
    #[error("not a {format} document: {reason}")]
    Document {
        format: &'static str,
        reason: String,
    },
}
