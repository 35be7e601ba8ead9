//! The rollout's metrics, read at scrape time: whether it is frozen, how
//! many breaches it stopped, each stage's ceiling (stage names are
//! configured, so a bounded label).

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};

use super::Rollout;

pub struct RolloutCollector {
    rollout: Arc<Rollout>,
    frozen: IntGauge,
    breaches: IntCounter,
    ceiling: IntGaugeVec,
}

impl RolloutCollector {
    pub fn new(rollout: Arc<Rollout>) -> Result<Self, prometheus::Error> {
        Ok(RolloutCollector {
            rollout,
            frozen: IntGauge::new(
                "c2wall_rollout_frozen",
                "1 while the staged rollout is frozen after a breach (until `c2wall rollout resume`).",
            )?,
            breaches: IntCounter::new(
                "c2wall_rollout_breaches_total",
                "Versions the rollout stopped and undid because a health signal left its bound \
                 (counted on the replica that decided).",
            )?,
            ceiling: IntGaugeVec::new(
                Opts::new(
                    "c2wall_rollout_ceiling_version",
                    "The newest version each rollout stage's agents may receive.",
                ),
                &["stage"],
            )?,
        })
    }
}

impl Collector for RolloutCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.frozen.desc();
        d.extend(self.breaches.desc());
        d.extend(self.ceiling.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.frozen.set(self.rollout.frozen() as i64);
        let seen = self.breaches.get();
        self.breaches
            .inc_by(self.rollout.breaches().saturating_sub(seen));
        if let Some(p) = self.rollout.policy() {
            let c = self.rollout.watch().borrow().clone();
            for (s, v) in p.stages.iter().zip(c) {
                self.ceiling.with_label_values(&[&s.name]).set(v as i64);
            }
        }
        let mut out = self.frozen.collect();
        out.extend(self.breaches.collect());
        out.extend(self.ceiling.collect());
        out
    }
}
