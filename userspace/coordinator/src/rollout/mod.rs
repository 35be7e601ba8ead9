//! Staged rollout: each version reaches the stages of the fleet in turn,
//! each soaking while its agents' reports say whether the entries new in it
//! hurt anyone; a breach freezes the rollout and undoes the offending
//! version, and the undo goes to every stage at once.
//!
//! One owner of the state: the replica that leads computes and persists it
//! (`policy`, `stages`, `health` decide; this module gathers and stores);
//! every replica's stream server reads the stage ceilings from
//! [`Rollout::watch`], refreshed from the store each tick.

pub mod collector;
pub mod health;
pub mod policy;
pub mod stages;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use c2wall_model::{wire::identity_from_wire, Identity, Labels};
use c2wall_proto::v1 as pb;
use prost::Message;
use tokio::sync::watch;

use crate::core::{now, Coordinator, Origin};
use crate::error::CoordError;
use crate::store::Store;
use health::{stage_health, Agent, InFlight, StageView};
use policy::Policy;
use stages::{advance, Freeze, Moved, RolloutState};

pub struct Rollout {
    policy: Option<Policy>,
    /// Each stage's ceiling (empty: no rollout, no ceilings).
    ceilings: watch::Sender<Vec<u64>>,
    frozen: AtomicBool,
    breaches: AtomicU64,
}

/// Versions a status or a tick looks back over for digests, at most.
const DIGESTS_KEPT: u64 = 4096;

impl Rollout {
    pub fn new(policy: Option<Policy>) -> Arc<Rollout> {
        Arc::new(Rollout {
            policy,
            ceilings: watch::channel(Vec::new()).0,
            frozen: AtomicBool::new(false),
            breaches: AtomicU64::new(0),
        })
    }

    /// No stages: every version goes to everyone at once.
    pub fn disabled() -> Arc<Rollout> {
        Rollout::new(None)
    }

    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// The stage of an agent (None without a policy).
    pub fn stage_of(&self, agent_id: &str, labels: &Labels) -> Option<usize> {
        self.policy.as_ref().map(|p| p.stage_of(agent_id, labels))
    }

    pub fn watch(&self) -> watch::Receiver<Vec<u64>> {
        self.ceilings.subscribe()
    }

    /// The newest version an agent of `stage` may receive now.
    pub fn cap(ceilings: &[u64], stage: Option<usize>) -> u64 {
        match stage {
            // Before the first tick there are no ceilings yet: hold at
            // nothing new rather than release everything.
            Some(s) => ceilings.get(s).copied().unwrap_or(0),
            None => u64::MAX,
        }
    }

    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Relaxed)
    }

    pub fn breaches(&self) -> u64 {
        self.breaches.load(Ordering::Relaxed)
    }

    fn load(&self, store: &dyn Store, latest: u64) -> Result<RolloutState, CoordError> {
        Ok(self.load_fitted(store, latest)?.0)
    }

    /// The stored state shaped to the policy, and whether that shaping
    /// changed it (no state stored yet, or stages added or removed): the
    /// ceilings start at the latest version when the policy first runs, and
    /// must be stored then, or a later tick would start them later.
    fn load_fitted(
        &self,
        store: &dyn Store,
        latest: u64,
    ) -> Result<(RolloutState, bool), CoordError> {
        let stored: Option<RolloutState> = match store.rollout()? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| CoordError::Corrupt(format!("rollout state: {e}")))?,
            ),
            None => None,
        };
        let mut st = stored.clone().unwrap_or_default();
        if let Some(p) = &self.policy {
            st.fit(p.stages.len(), latest);
        }
        let reshaped = stored.as_ref() != Some(&st);
        Ok((st, reshaped))
    }

    fn save(
        store: &mut dyn Store,
        st: &RolloutState,
        audit: Option<&crate::store::AuditEvent>,
    ) -> Result<(), CoordError> {
        let json = serde_json::to_string(st).expect("plain data");
        store.set_rollout(&json, audit)
    }

    fn show(&self, st: &RolloutState) {
        let c = st.ceilings();
        self.ceilings.send_if_modified(|have| {
            let changed = *have != c;
            *have = c;
            changed
        });
        self.frozen.store(st.frozen.is_some(), Ordering::Relaxed);
    }

    /// What every stage is measured on, read from the store. With
    /// `everything` false (the tick) nothing is read while no stage holds a
    /// version the next does not: only such a stage is ever measured.
    fn gather(
        &self,
        coord: &Coordinator,
        policy: &Policy,
        st: &RolloutState,
        now: i64,
        everything: bool,
    ) -> Result<Vec<StageView>, CoordError> {
        let n = policy.stages.len();
        let in_flight =
            (0..n.saturating_sub(1)).any(|k| st.stages[k].ceiling > st.stages[k + 1].ceiling);
        if !everything && !in_flight {
            return Ok((0..n).map(|_| StageView::default()).collect());
        }
        let reader = coord.reader.lock().expect("lock");
        let agents = reader
            .agents()?
            .iter()
            .map(|r| Agent::decode(policy, r))
            .collect::<Result<Vec<_>, _>>()?;
        // Agents below the lowest ceiling count as behind whatever their
        // digest: only the versions from there on are looked up.
        let latest = coord.latest_version();
        let lowest = st.stages.iter().map(|s| s.ceiling).min().unwrap_or(latest);
        let span = (latest.saturating_sub(lowest) + 1).min(DIGESTS_KEPT) as u32;
        let digests: HashMap<u64, Vec<u8>> = reader
            .history(latest + 1, span)?
            .into_iter()
            .map(|v| (v.version, v.digest))
            .collect();
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            let ceiling = st.stages[k].ceiling;
            let next = st.stages.get(k + 1).map_or(ceiling, |s| s.ceiling);
            let mut new_entries: HashMap<Identity, u64> = HashMap::new();
            let mut sightings = Vec::new();
            if ceiling > next {
                for d in reader.deltas_after(next)?.unwrap_or_default() {
                    let d = pb::Delta::decode(d.as_slice())
                        .map_err(|e| CoordError::Corrupt(format!("delta: {e}")))?;
                    if d.version > ceiling {
                        break;
                    }
                    for e in &d.upserts {
                        if let Some(id) = e.key.as_ref().and_then(|k| identity_from_wire(k).ok()) {
                            new_entries.insert(id, d.version);
                        }
                    }
                }
                let since = st.stages[k]
                    .reached
                    .iter()
                    .map(|(_, at)| *at)
                    .min()
                    .unwrap_or(now);
                let keep = |s: &pb::Sighting| {
                    s.entry
                        .as_ref()
                        .and_then(|k| identity_from_wire(k).ok())
                        .is_some_and(|id| new_entries.contains_key(&id))
                };
                sightings = reader.sightings(since, &keep, 100_000)?;
            }
            let f = InFlight {
                new_entries: &new_entries,
                sightings: &sightings,
                digests: &digests,
            };
            out.push(stage_health(policy, k, &agents, ceiling, &f, now));
        }
        Ok(out)
    }

    /// Every second on every replica: the replica that leads moves the
    /// rollout (and persists it); the others take the ceilings it stored.
    pub fn tick(&self, coord: &Coordinator) -> Result<(), CoordError> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let latest = coord.latest_version();
        let seen = self.load(coord.reader.lock().expect("lock").as_ref(), latest)?;
        if !coord.leads() {
            self.show(&seen);
            return Ok(());
        }
        let t = now();
        let health = self.gather(coord, policy, &seen, t, false)?;
        let mut w = coord.writer()?;
        let (mut st, reshaped) = self.load_fitted(w.store.as_ref(), latest)?;
        if reshaped {
            Self::save(w.store.as_mut(), &st, None)?;
            self.show(&st);
            return Ok(());
        }
        if st != seen {
            // Moved meanwhile (an expedite, a rollback): measure again next tick.
            self.show(&st);
            return Ok(());
        }
        let me = Origin::new("rollout", "coordinator");
        match advance(&mut st, policy, latest, t, &|k| health[k].health.clone()) {
            Moved::Nothing => {}
            Moved::Promoted => {
                let detail = policy
                    .stages
                    .iter()
                    .zip(st.ceilings())
                    .map(|(s, c)| format!("{}={c}", s.name))
                    .collect::<Vec<_>>()
                    .join(" ");
                let changed_beyond_first = st.stages[1..] != seen.stages[1..];
                let audit = changed_beyond_first
                    .then(|| me.audit(t, "rollout-promote", &detail, "soaked and healthy"));
                Self::save(w.store.as_mut(), &st, audit.as_ref())?;
            }
            Moved::Breach {
                stage,
                version,
                signal,
            } => {
                let name = policy.stages[stage].name.clone();
                st.frozen = Some(Freeze {
                    at: t,
                    stage: name.clone(),
                    version,
                    signal: signal.clone(),
                    rollback: 0,
                });
                let why = format!("stage {name}: {signal}");
                let audit = me.audit(t, "rollout-freeze", &format!("version {version}"), &why);
                Self::save(w.store.as_mut(), &st, Some(&audit))?;
                drop(w);
                self.breaches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(version, stage = %name, signal = %signal, "rollout frozen");
                let undo = coord.revert(version, &me, &why)?;
                if let Some(v) = undo {
                    let mut w = coord.writer()?;
                    let mut st = self.load(w.store.as_ref(), coord.latest_version())?;
                    st.release_all(v.version);
                    if let Some(f) = st.frozen.as_mut() {
                        f.rollback = v.version;
                    }
                    let audit = me.audit(
                        t,
                        "rollout-release",
                        &format!("version {} to every stage", v.version),
                        &format!("undoes version {version}"),
                    );
                    Self::save(w.store.as_mut(), &st, Some(&audit))?;
                    self.show(&st);
                    return Ok(());
                }
            }
        }
        self.show(&st);
        Ok(())
    }

    /// `version` goes to every stage at once: an expedited publish or a
    /// rollback (audited by their own calls; this records the release).
    pub fn release(
        &self,
        coord: &Coordinator,
        version: u64,
        origin: &Origin,
        why: &str,
    ) -> Result<(), CoordError> {
        if self.policy.is_none() {
            return Ok(());
        }
        let mut w = coord.writer()?;
        let mut st = self.load(w.store.as_ref(), coord.latest_version())?;
        st.release_all(version);
        let audit = origin.audit(
            now(),
            "rollout-release",
            &format!("version {version} to every stage"),
            why,
        );
        Self::save(w.store.as_mut(), &st, Some(&audit))?;
        self.show(&st);
        Ok(())
    }

    /// Clears a freeze (an admin, audited): versions flow through the
    /// stages again.
    pub fn resume(
        &self,
        coord: &Coordinator,
        origin: &Origin,
        reason: &str,
    ) -> Result<(), CoordError> {
        let mut w = coord.writer()?;
        let mut st = self.load(w.store.as_ref(), coord.latest_version())?;
        let Some(f) = st.frozen.take() else {
            return Err(CoordError::Precondition("the rollout is not frozen".into()));
        };
        let audit = origin.audit(
            now(),
            "rollout-resume",
            &format!("frozen at version {} ({})", f.version, f.signal),
            reason,
        );
        Self::save(w.store.as_mut(), &st, Some(&audit))?;
        self.show(&st);
        Ok(())
    }

    /// `c2wall rollout status`.
    pub fn status(&self, coord: &Coordinator) -> Result<pb::RolloutStatusResponse, CoordError> {
        let latest = coord.latest_version();
        let Some(policy) = &self.policy else {
            return Ok(pb::RolloutStatusResponse {
                enabled: false,
                latest_version: latest,
                ..Default::default()
            });
        };
        let st = self.load(coord.reader.lock().expect("lock").as_ref(), latest)?;
        let t = now();
        let health = self.gather(coord, policy, &st, t, true)?;
        let stages = policy
            .stages
            .iter()
            .zip(&st.stages)
            .zip(health)
            .map(|((p, s), view)| {
                let newest = s.reached.iter().map(|(_, at)| *at).max();
                pb::RolloutStage {
                    name: p.name.clone(),
                    selector: p.who.to_string(),
                    ceiling: s.ceiling,
                    agents: view.agents,
                    agents_at_ceiling: view.at_ceiling,
                    soak_seconds: p.soak.as_secs(),
                    soak_left_seconds: newest
                        .map_or(0, |r| (r + p.soak.as_secs() as i64 - t).max(0) as u64),
                    signals: view.signals,
                }
            })
            .collect();
        Ok(pb::RolloutStatusResponse {
            enabled: true,
            latest_version: latest,
            stages,
            frozen: st
                .frozen
                .as_ref()
                .map(|f| format!("version {} at stage {}: {}", f.version, f.stage, f.signal))
                .unwrap_or_default(),
            rollback_version: st.frozen.as_ref().map_or(0, |f| f.rollback),
        })
    }
}
