//! The rollout's state and how it moves: which version each stage may
//! receive (its ceiling), when each stage received each version, a freeze.
//! Pure: the health of each stage comes in from outside, so the moves are
//! tested without agents or a store.

use serde::{Deserialize, Serialize};

use super::policy::Policy;

/// Persisted (JSON in the store) so every replica serves the same ceilings
/// and a restart resumes the soaks where they were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    pub stages: Vec<StageState>,
    pub frozen: Option<Freeze>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageState {
    /// The newest version this stage's agents may receive.
    pub ceiling: u64,
    /// (version, unix seconds) this stage received and the next stage has
    /// not: each soaks from its own time.
    pub reached: Vec<(u64, i64)>,
}

/// Why the rollout stopped: the signal that tripped, its numbers, and the
/// version made to undo the offending one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub at: i64,
    pub stage: String,
    pub version: u64,
    pub signal: String,
    pub rollback: u64,
}

/// A stage's health over the versions it holds beyond the next stage.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// The lowest version every agent of the stage applied with a matching
    /// digest (u64::MAX when the stage has no agents).
    pub applied: u64,
    /// Agents not attached, not applying or not reporting beyond the bound:
    /// the stage waits.
    pub unhealthy: bool,
    /// A traffic signal out of bounds: (what tripped with its numbers, the
    /// version that brought the offending entry).
    pub breach: Option<(String, u64)>,
}

/// What [`advance`] decided beyond moving ceilings.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    Nothing,
    Promoted,
    Breach {
        stage: usize,
        version: u64,
        signal: String,
    },
}

impl RolloutState {
    /// Shapes the state to `n` stages; a new stage starts where the one
    /// before it is (a new policy holds nothing back that was delivered).
    pub fn fit(&mut self, n: usize, latest: u64) {
        if self.stages.is_empty() {
            self.stages = vec![
                StageState {
                    ceiling: latest,
                    reached: Vec::new()
                };
                n
            ];
        }
        while self.stages.len() < n {
            let c = self.stages.last().map_or(latest, |s| s.ceiling);
            self.stages.push(StageState {
                ceiling: c,
                reached: Vec::new(),
            });
        }
        self.stages.truncate(n);
    }

    pub fn ceilings(&self) -> Vec<u64> {
        self.stages.iter().map(|s| s.ceiling).collect()
    }

    /// Every stage may receive `version` now (expedite, rollbacks).
    pub fn release_all(&mut self, version: u64) {
        for s in &mut self.stages {
            s.ceiling = s.ceiling.max(version);
            s.reached.retain(|(v, _)| *v > version);
        }
    }

    fn reach(&mut self, k: usize, version: u64, now: i64) {
        let s = &mut self.stages[k];
        s.ceiling = version;
        s.reached.push((version, now));
    }
}

/// One step: the first stage takes the latest version; a stage whose
/// version has soaked, with every agent of it at that version and healthy,
/// passes it to the next; a breach anywhere stops everything. `health(k)`
/// is stage k's health over the versions it holds beyond stage k+1.
pub fn advance(
    st: &mut RolloutState,
    policy: &Policy,
    latest: u64,
    now: i64,
    health: &dyn Fn(usize) -> Health,
) -> Moved {
    if st.frozen.is_some() {
        return Moved::Nothing;
    }
    let n = policy.stages.len();
    let mut moved = Moved::Nothing;
    if st.stages[0].ceiling < latest {
        st.reach(0, latest, now);
        moved = Moved::Promoted;
    }
    for k in 0..n.saturating_sub(1) {
        let next = st.stages[k + 1].ceiling;
        if st.stages[k].ceiling <= next {
            continue;
        }
        let h = health(k);
        if let Some((signal, version)) = h.breach {
            return Moved::Breach {
                stage: k,
                version,
                signal,
            };
        }
        let soak = policy.stages[k].soak.as_secs() as i64;
        let soaked = st.stages[k]
            .reached
            .iter()
            // Strictly after: times are whole seconds, so a version that
            // arrived late in its second still soaks the full time.
            .filter(|(v, at)| *v > next && at + soak < now && *v <= h.applied)
            .map(|(v, _)| *v)
            .max();
        if let (Some(v), false) = (soaked, h.unhealthy) {
            st.stages[k].reached.retain(|(x, _)| *x > v);
            st.reach(k + 1, v, now);
            moved = Moved::Promoted;
        }
    }
    // The last stage passes nothing on: what it holds needs no soak record.
    if let Some(last) = st.stages.last_mut() {
        last.reached.clear();
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::policy::RolloutConfig;

    fn policy() -> Policy {
        let c: RolloutConfig = toml::from_str(
            "[[stage]]\nname = \"canary\"\nselector = \"role=canary\"\nsoak = \"10s\"\n\
             [[stage]]\nname = \"all\"\nsoak = \"0s\"\n",
        )
        .unwrap();
        Policy::from_config(&c).unwrap().unwrap()
    }

    fn healthy(applied: u64) -> impl Fn(usize) -> Health {
        move |_| Health {
            applied,
            ..Default::default()
        }
    }

    #[test]
    fn a_version_reaches_the_next_stage_only_after_its_soak_with_every_agent_applied() {
        let p = policy();
        let mut st = RolloutState::default();
        st.fit(2, 1);
        assert_eq!(advance(&mut st, &p, 2, 100, &healthy(2)), Moved::Promoted);
        assert_eq!(st.ceilings(), vec![2, 1]);
        // Soaking: nothing moves (not even at exactly the soak's end).
        assert_eq!(advance(&mut st, &p, 2, 105, &healthy(2)), Moved::Nothing);
        assert_eq!(advance(&mut st, &p, 2, 110, &healthy(2)), Moved::Nothing);
        // Soaked, but a canary has not applied it: still held.
        advance(&mut st, &p, 2, 111, &healthy(1));
        assert_eq!(st.ceilings(), vec![2, 1]);
        advance(&mut st, &p, 2, 111, &healthy(2));
        assert_eq!(st.ceilings(), vec![2, 2]);
        // Later versions soak from their own time.
        advance(&mut st, &p, 3, 120, &healthy(3));
        advance(&mut st, &p, 4, 125, &healthy(4));
        advance(&mut st, &p, 4, 131, &healthy(4));
        assert_eq!(st.ceilings(), vec![4, 3]);
        advance(&mut st, &p, 4, 136, &healthy(4));
        assert_eq!(st.ceilings(), vec![4, 4]);
    }

    #[test]
    fn a_breach_freezes_and_unhealthy_agents_hold() {
        let p = policy();
        let mut st = RolloutState::default();
        st.fit(2, 1);
        advance(&mut st, &p, 2, 100, &healthy(2));
        let sick = |_| Health {
            applied: 2,
            unhealthy: true,
            breach: None,
        };
        advance(&mut st, &p, 2, 200, &sick);
        assert_eq!(st.ceilings(), vec![2, 1]);
        let bad = |_| Health {
            applied: 2,
            unhealthy: false,
            breach: Some(("too many subscribers".into(), 2)),
        };
        assert_eq!(
            advance(&mut st, &p, 2, 200, &bad),
            Moved::Breach {
                stage: 0,
                version: 2,
                signal: "too many subscribers".into()
            }
        );
        st.release_all(3);
        assert_eq!(st.ceilings(), vec![3, 3]);
    }
}
