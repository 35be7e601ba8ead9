//! What an import keeps of a parse, and when a pull is too suspicious to
//! import at all. Pure logic, shared by the coordinator's feed runner and the
//! `c2wall feed` commands.

use c2wall_model::{Action, Direction, Entry, Family, Record};

use crate::Parsed;

/// Per-feed settings applied to every parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub action: Action,
    /// Used when the feed names no category for an entry.
    pub category: String,
    /// Shorter prefixes are left out (a feed listing a /8 is a mistake, not
    /// a C&C server).
    pub min_len_v4: u8,
    pub min_len_v6: u8,
    /// Entries the feed rates below this are left out.
    pub min_confidence: u8,
    /// Keep the port a feed gives (`tcp 443`); false widens to the address.
    pub ports: bool,
    /// Confidence recorded for entries the feed does not rate.
    pub default_confidence: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            action: Action::Monitor,
            category: String::new(),
            min_len_v4: 16,
            min_len_v6: 32,
            min_confidence: 0,
            ports: true,
            default_confidence: 75,
        }
    }
}

/// Entries the policy left out, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    pub too_short: usize,
    pub low_confidence: usize,
}

impl Policy {
    pub fn records(&self, parsed: &Parsed) -> (Vec<Record>, Dropped) {
        let mut out = Vec::with_capacity(parsed.entries.len());
        let mut dropped = Dropped::default();
        let mut seen = std::collections::HashSet::new();
        for e in &parsed.entries {
            // Domains have their own guards (the coordinator's); a prefix
            // shorter than the feed's floor is a feed mistake.
            if let Some(p) = e.target.prefix() {
                let min = match p.family() {
                    Family::V4 => self.min_len_v4,
                    Family::V6 => self.min_len_v6,
                };
                if p.len() < min {
                    dropped.too_short += 1;
                    continue;
                }
            }
            let confidence = e.confidence.unwrap_or(self.default_confidence);
            if confidence < self.min_confidence {
                dropped.low_confidence += 1;
                continue;
            }
            // A domain entry has no port (the resolver sees names only).
            let scope = if self.ports && e.target.prefix().is_some() {
                e.scope
            } else {
                None
            };
            // Widening ports to the address can fold several entries into one.
            if !seen.insert((e.target.clone(), scope)) {
                continue;
            }
            out.push(Record {
                promote_at: None,
                entry: Entry {
                    target: e.target.clone(),
                    scope,
                    action: self.action,
                    direction: Direction::Both,
                },
                source: String::new(),
                category: if e.category.is_empty() {
                    self.category.clone()
                } else {
                    e.category.clone()
                },
                reference: e.reference.clone(),
                confidence,
                valid_from: 0,
                valid_until: e.valid_until,
                created_by: String::new(),
                created_at: 0,
                chain: Vec::new(),
            });
        }
        (out, dropped)
    }
}

/// When a pull is refused (the previous import stays).
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// Refuse if more than this share of the records were rejected.
    pub max_reject_ratio: f64,
    /// Refuse if the entry count falls below this share of the previous
    /// import's (a feed does not lose most of its list between two pulls;
    /// a broken export does).
    pub min_keep_ratio: f64,
    /// Refuse more entries than this (0 = no limit).
    pub max_entries: usize,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_reject_ratio: 0.1,
            min_keep_ratio: 0.5,
            max_entries: 0,
        }
    }
}

impl Guard {
    /// Why `parsed` (kept as `kept` entries) must not replace an import of
    /// `previous` entries, if it must not.
    pub fn refuse(&self, parsed: &Parsed, kept: usize, previous: usize) -> Option<String> {
        if let Some(t) = &parsed.truncated {
            return Some(format!("truncated: {t}"));
        }
        let records = parsed.records();
        if records > 0 {
            let ratio = parsed.rejected.len() as f64 / records as f64;
            if ratio > self.max_reject_ratio {
                return Some(format!(
                    "{} of {records} records rejected ({:.0}%, the limit is {:.0}%)",
                    parsed.rejected.len(),
                    ratio * 100.0,
                    self.max_reject_ratio * 100.0
                ));
            }
        }
        if previous > 0 && (kept as f64) < previous as f64 * self.min_keep_ratio {
            return Some(format!(
                "entry count collapsed from {previous} to {kept} (below {:.0}% of the previous import)",
                self.min_keep_ratio * 100.0
            ));
        }
        if self.max_entries > 0 && kept > self.max_entries {
            return Some(format!(
                "{kept} entries, more than the feed's maximum of {}",
                self.max_entries
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, Location, Rejected};

    #[test]
    fn policy_filters_and_widens() {
        let text =
            "# feodo\n\"2026-01-01 00:00:00\",\"192.0.2.1\",\"443\",\"online\",\"\",\"Dridex\"\n\
            \"2026-01-01 00:00:00\",\"192.0.2.1\",\"8443\",\"online\",\"\",\"Dridex\"\n";
        let parsed = Format::FeodoCsv.parse(text.as_bytes(), 0).unwrap();
        let (kept, _) = Policy::default().records(&parsed);
        assert_eq!(kept.len(), 2, "one per port");
        let widened = Policy {
            ports: false,
            ..Default::default()
        };
        let (kept, _) = widened.records(&parsed);
        assert_eq!(kept.len(), 1, "one address");
        assert_eq!(kept[0].category, "Dridex");
        assert_eq!(kept[0].entry.action, Action::Monitor, "monitor by default");

        let wide = Format::Plain
            .parse(b"10.0.0.0/8\n192.0.2.0/24\n2001::/16\n", 0)
            .unwrap();
        let (kept, dropped) = Policy::default().records(&wide);
        assert_eq!(kept.len(), 1);
        assert_eq!(dropped.too_short, 2);
    }

    #[test]
    fn guard_refuses_truncated_broken_and_collapsed_pulls() {
        let g = Guard::default();
        let mut p = Format::Plain.parse(b"192.0.2.1\n192.0.2.2\n", 0).unwrap();
        assert_eq!(g.refuse(&p, 2, 3), None);
        assert!(g
            .refuse(&p, 2, 10)
            .unwrap()
            .contains("collapsed from 10 to 2"));
        p.truncated = Some("metadata says 9".into());
        assert!(g.refuse(&p, 2, 2).unwrap().starts_with("truncated"));
        p.truncated = None;
        p.rejected = vec![
            Rejected {
                at: Location::Line(1),
                reason: "x".into()
            };
            3
        ];
        assert!(g
            .refuse(&p, 2, 2)
            .unwrap()
            .contains("3 of 5 records rejected"));
        let capped = Guard {
            max_entries: 1,
            max_reject_ratio: 1.0,
            ..Default::default()
        };
        assert!(capped.refuse(&p, 2, 0).unwrap().contains("maximum of 1"));
    }
}
