//! A stage's health signals, from what its agents report: their status
//! (applied version and digest, errors, last report) and their sightings of
//! the entries new in the versions the stage holds beyond the next stage.

use std::collections::{HashMap, HashSet};

use c2wall_model::{wire::identity_from_wire, Identity, Labels};
use c2wall_proto::v1 as pb;
use prost::Message;

use super::policy::Policy;
use super::stages::Health;

/// One agent as its last report shows it.
pub struct Agent {
    pub id: String,
    pub status: pb::AgentStatus,
    pub last_seen: i64,
    pub stage: usize,
}

impl Agent {
    pub fn decode(
        policy: &Policy,
        row: &crate::store::AgentRow,
    ) -> Result<Agent, crate::CoordError> {
        let status = pb::AgentStatus::decode(row.status.as_slice())
            .map_err(|e| crate::CoordError::Corrupt(format!("agent status: {e}")))?;
        let labels: Labels = status
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Agent {
            stage: policy.stage_of(&row.agent_id, &labels),
            id: row.agent_id.clone(),
            status,
            last_seen: row.last_seen,
        })
    }
}

/// What a stage is measured on: the entries new in its versions in flight
/// (identity to the version that brought it), and sightings since the
/// oldest of those versions reached it.
pub struct InFlight<'a> {
    pub new_entries: &'a HashMap<Identity, u64>,
    pub sightings: &'a [(String, pb::Sighting)],
    /// Digest of each recent version, to check what agents applied.
    pub digests: &'a HashMap<u64, Vec<u8>>,
}

/// A stage as measured: its health, the signals (for status) and how many
/// of its agents are at its ceiling with a matching digest. The default is a
/// stage not measured: nothing applied, so nothing passes on.
#[derive(Default)]
pub struct StageView {
    pub health: Health,
    pub signals: Vec<pb::RolloutSignal>,
    pub agents: u32,
    pub at_ceiling: u32,
}

/// Stage `k`'s health and its signals (for status), and how many of its
/// agents are at `ceiling` with a matching digest.
pub fn stage_health(
    policy: &Policy,
    k: usize,
    agents: &[Agent],
    ceiling: u64,
    f: &InFlight<'_>,
    now: i64,
) -> StageView {
    let b = &policy.bounds;
    let timeout = b.report_timeout.as_secs() as i64;
    // An agent silent for ten report timeouts is gone (decommissioned,
    // renamed), not a member that holds its stage forever; one silent for
    // less is unhealthy and holds it.
    let mine: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.stage == k && now - a.last_seen <= 10 * timeout)
        .collect();
    let verified = |a: &Agent| {
        f.digests
            .get(&a.status.applied_version)
            .is_some_and(|d| *d == a.status.digest)
    };
    let applied = mine
        .iter()
        .map(|a| {
            if verified(a) {
                a.status.applied_version
            } else {
                0
            }
        })
        .min()
        .unwrap_or(u64::MAX);
    let at_ceiling = mine
        .iter()
        .filter(|a| verified(a) && a.status.applied_version >= ceiling)
        .count() as u32;
    let unhealthy = mine
        .iter()
        .filter(|a| {
            a.status.interfaces.is_empty()
                || !a.status.sync_error.is_empty()
                || now - a.last_seen > timeout
        })
        .count() as u64;

    let ids: HashSet<&str> = mine.iter().map(|a| a.id.as_str()).collect();
    let mut per_agent: HashMap<&str, u64> = HashMap::new();
    let mut subscribers: HashMap<Identity, HashSet<&str>> = HashMap::new();
    for (agent, s) in f.sightings {
        if !ids.contains(agent.as_str()) {
            continue;
        }
        let Some(id) = s.entry.as_ref().and_then(|e| identity_from_wire(e).ok()) else {
            continue;
        };
        if !f.new_entries.contains_key(&id) {
            continue;
        }
        *per_agent.entry(agent.as_str()).or_insert(0) += s.count;
        subscribers
            .entry(id)
            .or_default()
            .insert(s.subscriber.as_str());
    }
    let busiest = subscribers
        .iter()
        .max_by_key(|(_, s)| s.len())
        .map(|(id, s)| (id.clone(), s.len() as u64));
    let heaviest = per_agent
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(a, n)| (*a, *n));

    let mut breach = None;
    let mut signals = Vec::new();
    let subs = busiest.as_ref().map_or(0, |(_, n)| *n);
    if let Some((id, n)) = busiest.filter(|(_, n)| *n > b.max_subscribers_per_new_entry) {
        breach = Some((
            format!(
                "{n} distinct subscribers reached {id} (new in version {}), bound {}",
                f.new_entries[&id], b.max_subscribers_per_new_entry
            ),
            f.new_entries[&id],
        ));
    }
    signals.push(signal(
        "subscribers_per_new_entry",
        subs,
        b.max_subscribers_per_new_entry,
    ));
    let drops = heaviest.map_or(0, |(_, n)| n);
    if breach.is_none() && drops > b.max_new_entry_drops_per_agent {
        // The offending version: the newest one in flight that the agent's
        // heaviest entry came in.
        let (agent, _) = heaviest.expect("drops > 0");
        let version = f
            .sightings
            .iter()
            .filter(|(a, _)| a == agent)
            .filter_map(|(_, s)| s.entry.as_ref().and_then(|e| identity_from_wire(e).ok()))
            .filter_map(|id| f.new_entries.get(&id).copied())
            .max()
            .unwrap_or(ceiling);
        breach = Some((
            format!(
                "{drops} sampled drops towards entries new in the rollout at agent {agent}, bound {}",
                b.max_new_entry_drops_per_agent
            ),
            version,
        ));
    }
    signals.push(signal(
        "new_entry_drops_per_agent",
        drops,
        b.max_new_entry_drops_per_agent,
    ));
    signals.push(signal(
        "unhealthy_agents",
        unhealthy,
        b.max_unhealthy_agents,
    ));
    StageView {
        health: Health {
            applied,
            unhealthy: unhealthy > b.max_unhealthy_agents,
            breach,
        },
        signals,
        agents: mine.len() as u32,
        at_ceiling,
    }
}

fn signal(name: &str, value: u64, bound: u64) -> pb::RolloutSignal {
    pb::RolloutSignal {
        name: name.into(),
        value: value as f64,
        bound: bound as f64,
        breached: value > bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::policy::RolloutConfig;

    fn policy() -> Policy {
        let c: RolloutConfig = toml::from_str(
            "[[stage]]\nname = \"canary\"\nselector = \"role=canary\"\nsoak = \"10s\"\n\
             [[stage]]\nname = \"all\"\nsoak = \"0s\"\n\
             [bounds]\nmax_subscribers_per_new_entry = 2\nreport_timeout = \"60s\"\n",
        )
        .unwrap();
        Policy::from_config(&c).unwrap().unwrap()
    }

    fn agent(id: &str, version: u64, last_seen: i64) -> Agent {
        Agent {
            id: id.into(),
            status: pb::AgentStatus {
                applied_version: version,
                digest: vec![version as u8],
                interfaces: vec!["e0".into()],
                ..Default::default()
            },
            last_seen,
            stage: 0,
        }
    }

    #[test]
    fn members_applied_silence_gone_and_a_popular_new_entry() {
        let p = policy();
        let now = 10_000;
        let digests: HashMap<u64, Vec<u8>> = (1..=3).map(|v| (v, vec![v as u8])).collect();
        let bad: Identity = c2wall_model::Identity {
            target: "192.0.2.9".parse().unwrap(),
            scope: None,
        };
        let new_entries = HashMap::from([(bad.clone(), 3u64)]);
        let key = c2wall_model::wire::identity_to_wire(&bad);
        let sighting = |sub: &str| pb::Sighting {
            subscriber: sub.into(),
            entry: Some(key.clone()),
            count: 1,
            ..Default::default()
        };
        let mut agents = vec![agent("a", 3, now), agent("b", 2, now - 30)];
        let f = InFlight {
            new_entries: &new_entries,
            sightings: &[],
            digests: &digests,
        };
        let v = stage_health(&p, 0, &agents, 3, &f, now);
        assert_eq!((v.agents, v.at_ceiling, v.health.applied), (2, 1, 2));
        assert!(!v.health.unhealthy && v.health.breach.is_none());
        // Silent past the timeout: unhealthy (holds); past ten: gone.
        agents[1].last_seen = now - 61;
        assert!(stage_health(&p, 0, &agents, 3, &f, now).health.unhealthy);
        agents[1].last_seen = now - 601;
        let v = stage_health(&p, 0, &agents, 3, &f, now);
        assert_eq!(
            (v.agents, v.health.applied, v.health.unhealthy),
            (1, 3, false)
        );
        // Three distinct subscribers (bound 2) reach the new entry.
        let s: Vec<(String, pb::Sighting)> = ["p-1", "p-2", "p-3", "p-3"]
            .iter()
            .map(|x| ("a".to_string(), sighting(x)))
            .collect();
        let f = InFlight { sightings: &s, ..f };
        let (why, version) = stage_health(&p, 0, &agents, 3, &f, now)
            .health
            .breach
            .unwrap();
        assert_eq!(version, 3);
        assert!(
            why.contains("3 distinct subscribers reached 192.0.2.9"),
            "{why}"
        );
    }
}
