//! The zone: the effective domain entries as RPZ policy records at one
//! version (the SOA serial), and a journal of the records each later version
//! deleted and added, from which IXFR answers are built. Fed from the version
//! log (`Store::deltas_after`), so it follows replicas and upstreams too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use c2wall_model::wire::identity_from_wire;
use c2wall_model::{Action, Prefix, Target};
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

/// A listed name (or, with `ip_triggers`, prefix) as the zone needs it: the
/// effective action and the source that supplies it (which picks the policy).
type Listed = BTreeMap<Target, (Action, String)>;

pub struct Zone {
    pub version: u64,
    names: Listed,
    journal: VecDeque<Step>,
    journal_records: usize,
    /// Policy records in the zone (kept as deltas apply, for the gauge).
    size: usize,
}

/// The records one listed name contributes. Monitor entries contribute
/// none: RPZ's PASSTHRU would exempt the name from every later policy zone
/// the resolver has (a commercial feed's, the ISP's own), the opposite of
/// "watch it"; a monitor entry is observed by the edge agents instead.
pub fn records_of(cfg: &Rpz, t: &Target, action: Action, source: &str) -> Vec<Rr> {
    if action != Action::Drop {
        return Vec::new();
    }
    let target = match cfg.policy(source) {
        Policy::Nxdomain => None,
        Policy::Redirect(n) => Some(n.to_string()),
    };
    let d = match t {
        Target::Domain(d) => d,
        Target::Prefix(p) => {
            return vec![Rr {
                owner: rpz_ip_owner(p),
                target,
            }]
        }
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

/// An `rpz-ip` trigger's owner (relative to the zone): the prefix length,
/// then the address's labels reversed; IPv6 groups in hex with the longest
/// run of two or more zero groups as `zz` (`2001:db8::/32` is
/// `32.zz.db8.2001.rpz-ip`).
pub fn rpz_ip_owner(p: &Prefix) -> String {
    let labels: Vec<String> = match p.addr() {
        std::net::IpAddr::V4(a) => a.octets().iter().rev().map(|o| o.to_string()).collect(),
        std::net::IpAddr::V6(a) => {
            let g = a.segments();
            // The longest run of zero groups (two or more; the first on a tie).
            let (mut best, mut run) = ((0, 0), (0, 0));
            for (i, x) in g.iter().enumerate() {
                if *x == 0 {
                    run = if run.1 == 0 {
                        (i, 1)
                    } else {
                        (run.0, run.1 + 1)
                    };
                    if run.1 > best.1 {
                        best = run;
                    }
                } else {
                    run = (0, 0);
                }
            }
            let mut out: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 8 {
                if best.1 >= 2 && i == best.0 {
                    out.push("zz".into());
                    i += best.1;
                } else {
                    out.push(format!("{:x}", g[i]));
                    i += 1;
                }
            }
            out.reverse();
            out
        }
    };
    format!("{}.{}.rpz-ip", p.len(), labels.join("."))
}

impl Zone {
    pub fn new(cfg: &Rpz, version: u64, names: Vec<(Target, Action, String)>) -> Self {
        let mut z = Zone {
            version,
            names: names.into_iter().map(|(d, a, s)| (d, (a, s))).collect(),
            journal: VecDeque::new(),
            journal_records: 0,
            size: 0,
        };
        z.size = z
            .names
            .iter()
            .map(|(t, (a, s))| records_of(cfg, t, *a, s).len())
            .sum();
        z
    }

    /// Policy records in the zone.
    pub fn size(&self) -> usize {
        self.size
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
        let touch = |names: &Listed, t: &Target, out: &mut BTreeSet<Rr>| {
            if let Some((a, s)) = names.get(t) {
                out.extend(records_of(cfg, t, *a, s));
            }
        };
        // What the zone holds of an identity: every domain; with ip_triggers,
        // a whole prefix (no port).
        let held = |i: &c2wall_model::Identity| match &i.target {
            Target::Domain(_) => true,
            Target::Prefix(_) => cfg.ip_triggers && i.scope.is_none(),
        };
        for k in &d.removals {
            let ident = identity_from_wire(k).map_err(corrupt)?;
            if held(&ident) {
                touch(&self.names, &ident.target, &mut before);
                self.names.remove(&ident.target);
            }
        }
        for e in &d.upserts {
            let Some(k) = &e.key else { continue };
            let ident = identity_from_wire(k).map_err(corrupt)?;
            if !held(&ident) {
                continue;
            }
            let t = ident.target;
            touch(&self.names, &t, &mut before);
            self.names.remove(&t);
            // A prefix entry only `from` the C&C is no trigger for answers.
            let towards = e.direction != pb::Direction::From as i32;
            if t.domain().is_some() || towards {
                let action = if e.action == pb::Action::Monitor as i32 {
                    Action::Monitor
                } else {
                    Action::Drop
                };
                self.names.insert(t.clone(), (action, e.source.clone()));
                touch(&self.names, &t, &mut after);
            }
        }
        let step = Step {
            from: self.version,
            to: d.version,
            deleted: before.difference(&after).cloned().collect(),
            added: after.difference(&before).cloned().collect(),
        };
        self.size = (self.size + step.added.len()).saturating_sub(step.deleted.len());
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
mod tests;
