//! The zone: the effective domain entries as RPZ policy records at one
//! version (the SOA serial), and a journal of the records each later version
//! deleted and added, from which IXFR answers are built. Fed from the version
//! log (`Store::deltas_after`), so it follows replicas and upstreams too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use c2wall_model::wire::identity_from_wire;
use c2wall_model::{Action, Domain, Target};
use c2wall_proto::v1 as pb;
use prost::Message;

use super::config::{Policy, Rpz};
use crate::error::CoordError;

/// One policy record: `owner.ZONE. CNAME target` (relative owner, target
/// `None` for `.`, i.e. NXDOMAIN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rr {
    pub owner: String,
    pub target: Option<String>,
}

/// The serial a version is published as (RFC 1982 arithmetic wraps at 2^32).
pub fn serial(version: u64) -> u32 {
    version as u32
}

/// Versions kept for IXFR: older clients get the whole zone.
const JOURNAL_STEPS: usize = 10_000;
/// Records kept in the journal, over all steps.
const JOURNAL_RECORDS: usize = 1_000_000;

/// What one version changed.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub from: u64,
    pub to: u64,
    pub deleted: Vec<Rr>,
    pub added: Vec<Rr>,
}

/// A listed name as the zone needs it: the effective action and the source
/// that supplies it (which picks the policy).
type Listed = BTreeMap<Domain, (Action, String)>;

pub struct Zone {
    pub version: u64,
    names: Listed,
    journal: VecDeque<Step>,
    journal_records: usize,
}

/// The records one listed name contributes. Monitor entries contribute
/// none: RPZ's PASSTHRU would exempt the name from every later policy zone
/// the resolver has (a commercial feed's, the ISP's own), the opposite of
/// "watch it"; a monitor entry is observed by the edge agents instead.
pub fn records_of(cfg: &Rpz, d: &Domain, action: Action, source: &str) -> Vec<Rr> {
    if action != Action::Drop {
        return Vec::new();
    }
    let target = match cfg.policy(source) {
        Policy::Nxdomain => None,
        Policy::Redirect(n) => Some(n.to_string()),
    };
    let name = d.name.to_string();
    let mut out = vec![Rr {
        owner: name.clone(),
        target: target.clone(),
    }];
    if d.subtree {
        out.push(Rr {
            owner: format!("*.{name}"),
            target,
        });
    }
    out
}

impl Zone {
    pub fn new(version: u64, names: Vec<(Domain, Action, String)>) -> Self {
        Zone {
            version,
            names: names.into_iter().map(|(d, a, s)| (d, (a, s))).collect(),
            journal: VecDeque::new(),
            journal_records: 0,
        }
    }

    /// Listed names (drop and monitor).
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// Every policy record, in owner order.
    pub fn records(&self, cfg: &Rpz) -> Vec<Rr> {
        let mut out: Vec<Rr> = self
            .names
            .iter()
            .flat_map(|(d, (a, s))| records_of(cfg, d, *a, s))
            .collect();
        out.sort();
        out
    }

    /// Applies one stored delta (`previous_version` must be this zone's
    /// version); records what it changed in the journal.
    pub fn apply(&mut self, cfg: &Rpz, encoded: &[u8]) -> Result<(), CoordError> {
        let d = pb::Delta::decode(encoded)
            .map_err(|e| CoordError::Corrupt(format!("stored delta: {e}")))?;
        if d.version <= self.version {
            return Ok(());
        }
        if d.previous_version != self.version {
            return Err(CoordError::Corrupt(format!(
                "delta {} follows {}, the zone is at {}",
                d.version, d.previous_version, self.version
            )));
        }
        let corrupt = |e: c2wall_model::wire::WireError| {
            CoordError::Corrupt(format!("stored delta {}: {e}", d.version))
        };
        let mut before = BTreeSet::new();
        let mut after = BTreeSet::new();
        let touch = |names: &Listed, dom: &Domain, out: &mut BTreeSet<Rr>| {
            if let Some((a, s)) = names.get(dom) {
                out.extend(records_of(cfg, dom, *a, s));
            }
        };
        for k in &d.removals {
            if let Target::Domain(dom) = identity_from_wire(k).map_err(corrupt)?.target {
                touch(&self.names, &dom, &mut before);
                self.names.remove(&dom);
            }
        }
        for e in &d.upserts {
            let Some(k) = &e.key else { continue };
            if let Target::Domain(dom) = identity_from_wire(k).map_err(corrupt)?.target {
                touch(&self.names, &dom, &mut before);
                let action = if e.action == pb::Action::Monitor as i32 {
                    Action::Monitor
                } else {
                    Action::Drop
                };
                self.names.insert(dom.clone(), (action, e.source.clone()));
                touch(&self.names, &dom, &mut after);
            }
        }
        let step = Step {
            from: self.version,
            to: d.version,
            deleted: before.difference(&after).cloned().collect(),
            added: after.difference(&before).cloned().collect(),
        };
        self.journal_records += step.deleted.len() + step.added.len();
        self.journal.push_back(step);
        while self.journal.len() > JOURNAL_STEPS || self.journal_records > JOURNAL_RECORDS {
            let Some(old) = self.journal.pop_front() else {
                break;
            };
            self.journal_records -= old.deleted.len() + old.added.len();
        }
        self.version = d.version;
        Ok(())
    }

    /// The version a client's SOA serial names, if the journal reaches it.
    pub fn journal_from(&self, client: u32) -> Option<u64> {
        self.journal
            .iter()
            .map(|s| s.from)
            .find(|v| serial(*v) == client)
    }

    /// The net change from `from` to this version (one condensed IXFR
    /// step), or `None` when the journal does not reach back to `from`.
    pub fn since(&self, from: u64) -> Option<(Vec<Rr>, Vec<Rr>)> {
        if from == self.version {
            return Some((Vec::new(), Vec::new()));
        }
        let start = self.journal.iter().position(|s| s.from == from)?;
        let mut deleted: BTreeSet<Rr> = BTreeSet::new();
        let mut added: BTreeSet<Rr> = BTreeSet::new();
        for s in self.journal.iter().skip(start) {
            for r in &s.deleted {
                if !added.remove(r) {
                    deleted.insert(r.clone());
                }
            }
            for r in &s.added {
                if !deleted.remove(r) {
                    added.insert(r.clone());
                }
            }
        }
        Some((deleted.into_iter().collect(), added.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::wire::identity_to_wire;
    use c2wall_model::Identity;

    fn cfg() -> Rpz {
        toml::from_str::<super::super::config::RpzConfig>(
            "listen = \"127.0.0.1:5353\"\nallow_transfer = [\"127.0.0.1/32\"]\n\
             source_actions = { walled = \"redirect:garden.isp.example\" }",
        )
        .unwrap()
        .check()
        .unwrap()
    }

    fn key(name: &str) -> pb::EntryKey {
        identity_to_wire(&Identity {
            target: Target::Domain(name.parse().unwrap()),
            scope: None,
        })
    }

    fn upsert(name: &str, action: pb::Action, source: &str) -> pb::Entry {
        pb::Entry {
            key: Some(key(name)),
            action: action as i32,
            source: source.into(),
            ..Default::default()
        }
    }

    fn delta(prev: u64, v: u64, up: Vec<pb::Entry>, rm: &[&str]) -> Vec<u8> {
        pb::Delta {
            previous_version: prev,
            version: v,
            upserts: up,
            removals: rm.iter().map(|n| key(n)).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn rr(owner: &str, target: Option<&str>) -> Rr {
        Rr {
            owner: owner.into(),
            target: target.map(str::to_string),
        }
    }

    #[test]
    fn records_follow_action_subtree_and_source_policy() {
        let c = cfg();
        let mut z = Zone::new(0, vec![]);
        z.apply(
            &c,
            &delta(
                0,
                1,
                vec![
                    upsert("*.evil.example", pb::Action::Drop, "feed"),
                    upsert("watch.example", pb::Action::Monitor, "feed"),
                    upsert("bad.example", pb::Action::Drop, "walled"),
                ],
                &[],
            ),
        )
        .unwrap();
        assert_eq!(
            z.records(&c),
            [
                rr("*.evil.example", None),
                rr("bad.example", Some("garden.isp.example")),
                rr("evil.example", None),
            ]
        );
        // Monitor to drop adds; a withdrawal deletes; one net step from 1.
        z.apply(
            &c,
            &delta(
                1,
                2,
                vec![upsert("watch.example", pb::Action::Drop, "feed")],
                &[],
            ),
        )
        .unwrap();
        z.apply(&c, &delta(2, 3, vec![], &["bad.example"])).unwrap();
        z.apply(&c, &delta(3, 4, vec![], &[])).unwrap();
        let (del, add) = z.since(1).unwrap();
        assert_eq!(del, [rr("bad.example", Some("garden.isp.example"))]);
        assert_eq!(add, [rr("watch.example", None)]);
        assert_eq!(z.since(4).unwrap(), (vec![], vec![]));
        assert_eq!(
            z.since(0).unwrap().1,
            z.records(&c),
            "from empty: everything added"
        );
        assert!(z.since(7).is_none(), "a serial the journal never had");
        // Re-listing what was withdrawn nets out.
        z.apply(
            &c,
            &delta(
                4,
                5,
                vec![upsert("bad.example", pb::Action::Drop, "walled")],
                &[],
            ),
        )
        .unwrap();
        let (del, add) = z.since(2).unwrap();
        assert_eq!((del.len(), add.len()), (0, 0), "{del:?} {add:?}");
        // A gap is an error (the caller reloads the zone).
        assert!(z.apply(&c, &delta(9, 10, vec![], &[])).is_err());
    }
}
