//! Read-only views of the coordinator's state: listing, lookups, history,
//! agents, and the aggregates metrics need.

use std::{collections::HashMap, ops::Bound};

use c2wall_model::{Domain, Identity, Prefix, Record, Target};
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::core::{now, Coordinator};
use crate::error::CoordError;
use crate::state::RecordKey;
use crate::store::{AgentRow, VersionInfo};

impl Coordinator {
    /// Up to `limit` records in key order after `after`, inside `within`, of
    /// `source` (empty = any); and whether more follow.
    pub fn list(
        &self,
        within: Option<Prefix>,
        source: &str,
        after: Option<RecordKey>,
        limit: usize,
    ) -> (Vec<Record>, bool, u64) {
        let state = self.state.read().expect("lock");
        let start = match (after, within) {
            (Some(k), _) => Bound::Excluded(k),
            (None, Some(w)) => Bound::Included((
                Identity {
                    target: w.into(),
                    scope: None,
                },
                String::new(),
            )),
            (None, None) => Bound::Unbounded,
        };
        let end = within.map(|w| w.last_host());
        let mut it = state
            .range(start)
            // Domain entries sort after every prefix: a `within` range ends
            // at the first of them.
            .take_while(|r| end.is_none_or(|e| r.identity().prefix().is_some_and(|p| p <= e)))
            .filter(|r| {
                within.is_none_or(|w| r.identity().prefix().is_some_and(|p| w.contains(&p)))
            })
            .filter(|r| source.is_empty() || r.source() == source);
        let out: Vec<Record> = it.by_ref().take(limit).map(|r| r.record()).collect();
        let more = it.next().is_some();
        (out, more, state.version)
    }

    /// Every source's record of `ident`, and the effective one.
    pub fn get(&self, ident: &Identity) -> (Vec<Record>, Option<Record>, u64) {
        let state = self.state.read().expect("lock");
        let records = state.records_of(ident);
        let effective = state.effective(ident);
        (records, effective, state.version)
    }

    /// Records whose prefix contains `addr`, most specific first: one range
    /// lookup per prefix length, not a scan.
    pub fn explain(&self, addr: std::net::IpAddr) -> (Vec<Record>, u64) {
        let state = self.state.read().expect("lock");
        let host = Prefix::host(addr);
        let mut out = Vec::new();
        for len in (0..=host.len()).rev() {
            let p = host.truncate(len);
            let from = Identity {
                target: p.into(),
                scope: None,
            };
            let mut at: Vec<Record> = state
                .range(Bound::Included((from, String::new())))
                .take_while(|r| r.identity().prefix() == Some(p))
                .map(|r| r.record())
                .collect();
            // At equal length a port-scoped entry is the more specific.
            at.sort_by_key(|r| std::cmp::Reverse(r.entry.scope.is_some()));
            out.extend(at);
        }
        (out, state.version)
    }

    /// Records of domain entries covering `name`, most specific first: the
    /// exact entry, then the wildcard of the name, then of each parent.
    pub fn explain_name(&self, name: &c2wall_model::DomainName) -> (Vec<Record>, u64) {
        let state = self.state.read().expect("lock");
        let mut out = Vec::new();
        let mut keys = vec![Domain {
            name: name.clone(),
            subtree: false,
        }];
        let mut at = Some(name.clone());
        while let Some(n) = at {
            at = n.parent();
            keys.push(Domain {
                name: n,
                subtree: true,
            });
        }
        for d in keys {
            out.extend(state.records_of(&Identity {
                target: Target::Domain(d),
                scope: None,
            }));
        }
        (out, state.version)
    }

    /// The effective domain entries and the version they are at (with
    /// `ip_triggers`, the whole-prefix entries towards a C&C too).
    pub fn rpz_set(&self, ip_triggers: bool) -> (u64, Vec<(Target, c2wall_model::Action, String)>) {
        let state = self.state.read().expect("lock");
        let mut out: Vec<(Target, c2wall_model::Action, String)> = Vec::new();
        if ip_triggers {
            out.extend(
                state
                    .effective_ip_triggers()
                    .into_iter()
                    .map(|(p, a, s)| (Target::Prefix(p), a, s)),
            );
        }
        out.extend(
            state
                .effective_domains()
                .into_iter()
                .map(|(d, a, s)| (Target::Domain(d), a, s)),
        );
        (state.version, out)
    }

    /// The stored deltas after `version`, oldest first; `None` when the log
    /// no longer reaches back that far.
    pub fn deltas_after(&self, version: u64) -> Result<Option<Vec<Vec<u8>>>, CoordError> {
        self.reader.lock().expect("lock").deltas_after(version)
    }

    pub fn history(&self, before: u64, limit: u32) -> Result<Vec<VersionInfo>, CoordError> {
        self.reader.lock().expect("lock").history(before, limit)
    }

    pub fn report(&self, status: &pb::AgentStatus) -> Result<(), CoordError> {
        let row = AgentRow {
            agent_id: status.agent_id.clone(),
            status: status.encode_to_vec(),
            last_seen: now(),
        };
        self.inner.lock().expect("lock").store.put_agent(&row)
    }

    pub fn agents(&self) -> Result<Vec<pb::AgentInfo>, CoordError> {
        let rows = self.reader.lock().expect("lock").agents()?;
        let connected = self.connected.lock().expect("lock");
        rows.into_iter()
            .map(|r| {
                let status = pb::AgentStatus::decode(r.status.as_slice())
                    .map_err(|e| CoordError::Corrupt(e.to_string()))?;
                Ok(pb::AgentInfo {
                    connected: connected.get(&r.agent_id).is_some_and(|n| *n > 0),
                    status: Some(status),
                    last_seen: r.last_seen,
                })
            })
            .collect()
    }

    /// Records by (source, category, action).
    pub fn record_counts(&self) -> std::collections::BTreeMap<(String, String, String), usize> {
        self.state.read().expect("lock").counts()
    }

    /// Connected agents, and per known agent (versions behind, seconds since
    /// the first version it lacks was published).
    pub fn agent_lags(&self) -> Result<(usize, Vec<(u64, i64)>), CoordError> {
        let agents = self.agents()?;
        let latest = self.latest_version();
        let oldest = agents
            .iter()
            .filter_map(|a| a.status.as_ref().map(|s| s.applied_version))
            .min()
            .unwrap_or(latest);
        let span = (latest.saturating_sub(oldest)).min(10_000) as u32;
        let created: HashMap<u64, i64> = self
            .history(0, span.max(1))?
            .into_iter()
            .map(|v| (v.version, v.created_at))
            .collect();
        let t = now();
        let connected = agents.iter().filter(|a| a.connected).count();
        let lags = agents
            .iter()
            .map(|a| {
                let applied = a.status.as_ref().map_or(0, |s| s.applied_version);
                let behind = latest.saturating_sub(applied);
                let seconds = if behind == 0 {
                    0
                } else {
                    created.get(&(applied + 1)).map_or(0, |c| (t - c).max(0))
                };
                (behind, seconds)
            })
            .collect();
        Ok((connected, lags))
    }
}
