//! From an upstream's verified set to this coordinator's records: the
//! local policy (categories, sources, confidence, floors, action override
//! and soak) and the provenance chain. Pure: no store, no clock of its own.

use std::collections::HashMap;

use c2wall_model::{Action, Family, Hop, Identity, Record};

use super::config::Policy;

/// Why the local policy keeps an upstream entry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeftOut {
    Category(String),
    Source(String),
    Confidence(u8),
    Floor { len: u8, min: u8 },
}

impl LeftOut {
    /// A fixed name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LeftOut::Category(_) => "category",
            LeftOut::Source(_) => "source",
            LeftOut::Confidence(_) => "confidence",
            LeftOut::Floor { .. } => "floor",
        }
    }
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftOut::Category(c) => write!(f, "category `{c}` is not among those accepted"),
            LeftOut::Source(s) => write!(f, "upstream source `{s}` is not among those accepted"),
            LeftOut::Confidence(c) => write!(f, "confidence {c} is below the minimum"),
            LeftOut::Floor { len, min } => {
                write!(f, "a /{len} is shorter than this upstream's floor /{min}")
            }
        }
    }
}

/// What the policy makes of an upstream set.
#[derive(Debug, Default)]
pub struct Taken {
    /// Records for source `upstream:NAME` (source, creator and time are set
    /// by the import that stores them).
    pub records: Vec<Record>,
    pub left_out: Vec<(Record, LeftOut)>,
}

impl Policy {
    fn check(&self, r: &Record) -> Result<(), LeftOut> {
        if !self.categories.is_empty() && !self.categories.contains(&r.category) {
            return Err(LeftOut::Category(r.category.clone()));
        }
        if !self.sources.is_empty() && !self.sources.contains(&r.source) {
            return Err(LeftOut::Source(r.source.clone()));
        }
        if r.confidence < self.min_confidence {
            return Err(LeftOut::Confidence(r.confidence));
        }
        // Prefix floors; a domain entry has its own guards (refuse).
        if let Some(p) = r.entry.listed_prefix() {
            let min = match p.family() {
                Family::V4 => self.min_prefix_v4,
                Family::V6 => self.min_prefix_v6,
            };
            if let Some(min) = min.filter(|m| p.len() < *m) {
                return Err(LeftOut::Floor { len: p.len(), min });
            }
        }
        Ok(())
    }

    /// Maps `upstream`'s set at `version`. `existing` is what this
    /// coordinator holds of it now: an entry the upstream still lists as it
    /// was keeps its local record whole (its action after a soak promoted it
    /// or an admin objected, the version it first came with), so an
    /// unchanged entry is never rewritten.
    pub fn take<'a>(
        &self,
        upstream: &str,
        version: u64,
        set: impl IntoIterator<Item = &'a Record>,
        existing: &HashMap<Identity, Record>,
        now: i64,
    ) -> Taken {
        let mut out = Taken::default();
        for u in set {
            let mut chain = u.chain.clone();
            chain.push(Hop {
                upstream: upstream.to_string(),
                source: u.source.clone(),
                created_by: u.created_by.clone(),
                created_at: u.created_at,
                version,
            });
            let (action, promote_at) = match (self.action, self.soak) {
                (None, _) => (u.entry.action, u.promote_at),
                (Some(Action::Monitor), Some(soak)) => {
                    (Action::Monitor, Some(now.saturating_add(soak)))
                }
                (Some(a), _) => (a, None),
            };
            let mut r = Record {
                entry: c2wall_model::Entry {
                    action,
                    ..u.entry.clone()
                },
                chain,
                promote_at,
                ..u.clone()
            };
            if let Err(why) = self.check(u) {
                out.left_out.push((r, why));
                continue;
            }
            if let Some(e) = existing.get(&u.identity()) {
                if self.same_upstream(e, &r) {
                    r = e.clone();
                }
            }
            out.records.push(r);
        }
        out
    }

    /// Whether `have` (stored) and `new` (just mapped) say the same of the
    /// upstream's entry: the upstream's fields equal, the hop equal but for
    /// its version; and, without an action override, the same action and
    /// schedule (with one, the local record's own action stands).
    fn same_upstream(&self, have: &Record, new: &Record) -> bool {
        let hops_equal = have.chain.len() == new.chain.len()
            && have
                .chain
                .iter()
                .zip(&new.chain)
                .enumerate()
                .all(|(i, (a, b))| {
                    let last = i + 1 == new.chain.len();
                    a.upstream == b.upstream
                        && a.source == b.source
                        && a.created_by == b.created_by
                        && a.created_at == b.created_at
                        && (last || a.version == b.version)
                });
        let action_equal = self.action.is_some()
            || (have.entry.action == new.entry.action && have.promote_at == new.promote_at);
        hops_equal
            && action_equal
            && have.entry.target == new.entry.target
            && have.entry.scope == new.entry.scope
            && have.entry.direction == new.entry.direction
            && have.category == new.category
            && have.reference == new.reference
            && have.confidence == new.confidence
            && have.valid_until == new.valid_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{Direction, Entry};

    fn rec(p: &str, category: &str, confidence: u8, action: Action) -> Record {
        Record {
            entry: Entry {
                target: p.parse().unwrap(),
                scope: None,
                action,
                direction: Direction::Both,
            },
            source: "feed:threatfox".into(),
            category: category.into(),
            reference: "ref".into(),
            confidence,
            valid_from: 10,
            valid_until: Some(10_000),
            created_by: "feed:threatfox".into(),
            created_at: 5,
            promote_at: None,
            chain: Vec::new(),
        }
    }

    #[test]
    fn provenance_is_kept_and_a_hop_added() {
        let p = Policy::default();
        let u = rec("192.0.2.1", "mirai", 80, Action::Drop);
        let t = p.take("jp-centre", 7, [&u], &HashMap::new(), 100);
        let r = &t.records[0];
        assert_eq!(
            (r.category.as_str(), r.reference.as_str()),
            ("mirai", "ref")
        );
        assert_eq!((r.confidence, r.valid_until), (80, Some(10_000)));
        assert_eq!(
            r.chain,
            vec![Hop {
                upstream: "jp-centre".into(),
                source: "feed:threatfox".into(),
                created_by: "feed:threatfox".into(),
                created_at: 5,
                version: 7
            }]
        );
    }

    #[test]
    fn filters_leave_entries_out_naming_why() {
        let p = Policy {
            categories: vec!["mirai".into()],
            min_confidence: 50,
            min_prefix_v4: Some(24),
            ..Default::default()
        };
        let set = [
            rec("192.0.2.1", "mirai", 80, Action::Drop),
            rec("192.0.2.2", "emotet", 80, Action::Drop),
            rec("192.0.2.3", "mirai", 20, Action::Drop),
            rec("198.51.0.0/16", "mirai", 90, Action::Drop),
        ];
        let t = p.take("c", 1, &set, &HashMap::new(), 0);
        assert_eq!(t.records.len(), 1);
        let kinds: Vec<&str> = t.left_out.iter().map(|(_, w)| w.kind()).collect();
        assert_eq!(kinds, ["category", "confidence", "floor"]);
        assert!(t.left_out[2].1.to_string().contains("/16"));
    }

    #[test]
    fn monitor_first_soaks_new_entries_and_keeps_the_schedule_of_old_ones() {
        let p = Policy {
            action: Some(Action::Monitor),
            soak: Some(3600),
            ..Default::default()
        };
        let u = rec("192.0.2.1", "mirai", 80, Action::Drop);
        let first = p.take("c", 1, [&u], &HashMap::new(), 100);
        let r = first.records[0].clone();
        assert_eq!(
            (r.entry.action, r.promote_at),
            (Action::Monitor, Some(3700))
        );
        // Later versions: same entry upstream, so the local record stands
        // (its schedule and its first version), even once promoted.
        let mut have = HashMap::from([(r.identity(), r.clone())]);
        let again = p.take("c", 9, [&u], &have, 500);
        assert_eq!(again.records[0], r);
        let mut promoted = r.clone();
        promoted.entry.action = Action::Drop;
        promoted.promote_at = None;
        have.insert(promoted.identity(), promoted.clone());
        assert_eq!(p.take("c", 9, [&u], &have, 5000).records[0], promoted);
        // A change upstream makes a new local record.
        let mut changed = u.clone();
        changed.confidence = 95;
        let t = p.take("c", 10, [&changed], &have, 6000);
        assert_eq!(t.records[0].promote_at, Some(9600));
        assert_eq!(t.records[0].chain[0].version, 10);
    }

    #[test]
    fn without_an_override_the_upstream_action_is_kept() {
        let p = Policy::default();
        let u = rec("192.0.2.1", "mirai", 80, Action::Monitor);
        assert_eq!(
            p.take("c", 1, [&u], &HashMap::new(), 0).records[0]
                .entry
                .action,
            Action::Monitor
        );
        let drop = Policy {
            action: Some(Action::Drop),
            ..Default::default()
        };
        let t = drop.take("c", 1, [&u], &HashMap::new(), 0);
        assert_eq!(
            (t.records[0].entry.action, t.records[0].promote_at),
            (Action::Drop, None)
        );
    }
}
