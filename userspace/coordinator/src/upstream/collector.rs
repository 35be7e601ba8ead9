//! The upstreams' metrics, read at scrape time. Upstream names are
//! configured, so they are a bounded label.

use std::sync::{atomic::Ordering::Relaxed, Arc};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::Board;

pub struct UpstreamCollector {
    board: Arc<Board>,
    version: IntGaugeVec,
    latest: IntGaugeVec,
    contact: IntGaugeVec,
    entries: IntGaugeVec,
    vetoed: IntGaugeVec,
    held: IntGaugeVec,
    refused: IntCounterVec,
}

fn gauge(name: &str, help: &str) -> Result<IntGaugeVec, prometheus::Error> {
    IntGaugeVec::new(Opts::new(name, help), &["upstream"])
}

impl UpstreamCollector {
    pub fn new(board: Arc<Board>) -> Result<Self, prometheus::Error> {
        Ok(UpstreamCollector {
            board,
            version: gauge(
                "c2wall_upstream_version",
                "The upstream's version last verified and kept (the set this coordinator takes \
                 its entries from).",
            )?,
            latest: gauge(
                "c2wall_upstream_latest_version",
                "The upstream's latest version, as its stream announced it.",
            )?,
            contact: gauge(
                "c2wall_upstream_last_contact_timestamp_seconds",
                "Unix time of the last message from the upstream (0: never).",
            )?,
            entries: gauge(
                "c2wall_upstream_entries",
                "Records this coordinator holds from the upstream (enforced here).",
            )?,
            vetoed: gauge(
                "c2wall_upstream_vetoed_entries",
                "Upstream entries the local policy keeps out (protected ranges, floors, \
                 categories, sources, confidence).",
            )?,
            held: gauge(
                "c2wall_upstream_held",
                "1 while an upstream change is held by the change breaker for an admin.",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "c2wall_upstream_refused_versions_total",
                    "Upstream versions refused, by reason (signature, digest, lineage, older, \
                     gap, invalid); the last verified set stays.",
                ),
                &["upstream", "reason"],
            )?,
        })
    }
}

impl Collector for UpstreamCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.version.desc();
        for g in [
            &self.latest,
            &self.contact,
            &self.entries,
            &self.vetoed,
            &self.held,
        ] {
            d.extend(g.desc());
        }
        d.extend(self.refused.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for f in &self.board.followers {
            let n = [f.upstream.name.as_str()];
            let s = &f.status;
            self.version
                .with_label_values(&n)
                .set(s.applied_version.load(Relaxed) as i64);
            self.latest
                .with_label_values(&n)
                .set(s.latest_version.load(Relaxed) as i64);
            self.contact
                .with_label_values(&n)
                .set(s.last_contact.load(Relaxed));
            {
                let v = f.view.lock().expect("lock");
                self.entries.with_label_values(&n).set(v.entries as i64);
                self.vetoed.with_label_values(&n).set(v.vetoed.len() as i64);
                self.held.with_label_values(&n).set(v.held.is_some() as i64);
            }
            for reason in ["signature", "digest", "lineage", "older", "gap", "invalid"] {
                let c = self.refused.with_label_values(&[n[0], reason]);
                let total = s.refused.lock().expect("lock").get(reason).copied();
                c.inc_by(total.unwrap_or(0).saturating_sub(c.get()));
            }
        }
        let mut out = self.version.collect();
        for g in [
            &self.latest,
            &self.contact,
            &self.entries,
            &self.vetoed,
            &self.held,
        ] {
            out.extend(g.collect());
        }
        out.extend(self.refused.collect());
        out
    }
}
