//! The rollout policy from the coordinator's config: stages chosen by label
//! selectors or shares of the fleet, a soak per stage, and the bounds the
//! health signals must stay within.
//!
//! ```toml
//! [[rollout.stage]]
//! name = "canary"
//! selector = "role=canary"     # or share = 0.1
//! soak = "30m"
//! ```

use std::time::Duration;

use c2wall_model::{Labels, Selector};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::CoordError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default)]
    pub stage: Vec<StageConfig>,
    #[serde(default)]
    pub bounds: BoundsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    /// `role=canary,site=tokyo-1`: agents whose labels match every pair.
    pub selector: Option<String>,
    /// A share of the fleet (0-1) by a hash of the agent's name, the same
    /// agents every time; shares are of the whole fleet, so 0.1 then 0.5
    /// is 10% then the next 40%.
    pub share: Option<f64>,
    /// How long the stage runs a version before the next stage gets it.
    pub soak: String,
}

/// Health bounds over a stage's soak; the defaults and why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoundsConfig {
    /// Distinct subscribers (pseudonyms) seen reaching one entry new in the
    /// version, over the stage's agents. Default 25: a C&C server is
    /// reached by the few infected devices behind an edge, a popular
    /// service by many; 25 different subscribers within a soak is the mark
    /// of a real service.
    pub max_subscribers_per_new_entry: u64,
    /// Sampled drop (or would-drop) events towards entries new in the
    /// version, per agent. Default 1000: a bot's beacon to its C&C is
    /// periodic and thin; a thousand sampled drops at one node (sampling
    /// keeps at most 100 a second per CPU) is heavy traffic.
    pub max_new_entry_drops_per_agent: u64,
    /// Agents of the stage not attached, not applying (a sync error) or not
    /// reporting. Default 0: every agent must be healthy to promote, and one
    /// that breaks after receiving the version is a reason to stop.
    pub max_unhealthy_agents: u64,
    /// An agent silent this long is not reporting. Default "60s" (six of the
    /// agent's default report intervals).
    pub report_timeout: String,
}

impl Default for BoundsConfig {
    fn default() -> Self {
        BoundsConfig {
            max_subscribers_per_new_entry: 25,
            max_new_entry_drops_per_agent: 1000,
            max_unhealthy_agents: 0,
            report_timeout: "60s".into(),
        }
    }
}

/// Who is in a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    Selector(Selector),
    Share(f64),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub who: Who,
    pub soak: Duration,
}

#[derive(Debug, Clone)]
pub struct Bounds {
    pub max_subscribers_per_new_entry: u64,
    pub max_new_entry_drops_per_agent: u64,
    pub max_unhealthy_agents: u64,
    pub report_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub stages: Vec<Stage>,
    pub bounds: Bounds,
}

fn bad(message: String) -> CoordError {
    CoordError::Setting(message)
}

fn duration(field: &str, s: &str) -> Result<Duration, CoordError> {
    humantime::parse_duration(s)
        .map_err(|e| bad(format!("{field} = \"{s}\": {e} (e.g. \"30m\", \"2h\")")))
}

impl Policy {
    /// None when no stage is configured: every version goes to everyone.
    pub fn from_config(c: &RolloutConfig) -> Result<Option<Policy>, CoordError> {
        if c.stage.is_empty() {
            return Ok(None);
        }
        let mut stages = Vec::new();
        for (i, s) in c.stage.iter().enumerate() {
            let at = format!("rollout.stage[{i}] ({})", s.name);
            if s.name.is_empty() || stages.iter().any(|x: &Stage| x.name == s.name) {
                return Err(bad(format!("{at}: each stage needs a name of its own")));
            }
            let who = match (&s.selector, s.share) {
                (Some(sel), None) => Who::Selector(
                    Selector::parse(sel).map_err(|e| bad(format!("{at}: selector: {e}")))?,
                ),
                (None, Some(f)) if f > 0.0 && f <= 1.0 => Who::Share(f),
                (None, Some(f)) => {
                    return Err(bad(format!(
                        "{at}: share = {f}: between 0 (excluded) and 1"
                    )))
                }
                (Some(_), Some(_)) => {
                    return Err(bad(format!("{at}: a selector or a share, not both")))
                }
                (None, None) => Who::Selector(Selector::default()),
            };
            stages.push(Stage {
                name: s.name.clone(),
                who,
                soak: duration(&format!("{at}: soak"), &s.soak)?,
            });
        }
        let b = &c.bounds;
        Ok(Some(Policy {
            stages,
            bounds: Bounds {
                max_subscribers_per_new_entry: b.max_subscribers_per_new_entry,
                max_new_entry_drops_per_agent: b.max_new_entry_drops_per_agent,
                max_unhealthy_agents: b.max_unhealthy_agents,
                report_timeout: duration("rollout.bounds.report_timeout", &b.report_timeout)?,
            },
        }))
    }

    /// The stage of an agent: the first whose selector or share takes it;
    /// an agent no stage takes is in the last stage.
    pub fn stage_of(&self, agent_id: &str, labels: &Labels) -> usize {
        let bucket = share_bucket(agent_id);
        self.stages
            .iter()
            .position(|s| match &s.who {
                Who::Selector(sel) => sel.matches(labels),
                Who::Share(f) => bucket < *f,
            })
            .unwrap_or(self.stages.len() - 1)
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Selector(s) if s.to_string().is_empty() => write!(f, "everyone"),
            Who::Selector(s) => write!(f, "{s}"),
            Who::Share(x) => write!(f, "share {x:.2}"),
        }
    }
}

/// Where an agent falls in [0, 1): the same for the same name everywhere.
pub fn share_bucket(agent_id: &str) -> f64 {
    let h = Sha256::digest(agent_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml: &str) -> RolloutConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn stages_by_selector_and_share_the_rest_in_the_last() {
        let p = Policy::from_config(&cfg(
            "[[stage]]\nname = \"canary\"\nselector = \"role=canary\"\nsoak = \"30m\"\n\
             [[stage]]\nname = \"half\"\nshare = 0.5\nsoak = \"1h\"\n\
             [[stage]]\nname = \"all\"\nsoak = \"0s\"\n",
        ))
        .unwrap()
        .unwrap();
        let mut canary = Labels::new();
        canary.insert("role".into(), "canary".into());
        assert_eq!(p.stage_of("edge-1", &canary), 0);
        let in_half = (0..1000)
            .filter(|i| p.stage_of(&format!("edge-{i}"), &Labels::new()) == 1)
            .count();
        assert!((400..600).contains(&in_half), "{in_half}");
        assert_eq!(p.stages[0].soak, Duration::from_secs(1800));
        assert!(Policy::from_config(&RolloutConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_wrong_stage_is_refused_naming_it() {
        let e = |t: &str| Policy::from_config(&cfg(t)).unwrap_err().to_string();
        assert!(e("[[stage]]\nname = \"c\"\nshare = 2.0\nsoak = \"1m\"\n")
            .contains("stage[0] (c): share = 2"));
        assert!(e("[[stage]]\nname = \"c\"\nsoak = \"soon\"\n").contains("soak = \"soon\""));
        assert!(
            e("[[stage]]\nname = \"c\"\nselector = \"Role\"\nsoak = \"1m\"\n").contains("selector")
        );
        assert!(e(
            "[[stage]]\nname = \"c\"\nsoak = \"1m\"\n[[stage]]\nname = \"c\"\nsoak = \"1m\"\n"
        )
        .contains("a name of its own"));
    }
}
