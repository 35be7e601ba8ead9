//! The coordinator's Prometheus metrics (feeds here; more with the
//! observability work). Feed names are configured, so they are a bounded
//! label; no entry or agent ever is.

use prometheus::{
    Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub version: IntGauge,
    pub feed_last_success: GaugeVec,
    pub feed_entries: IntGaugeVec,
    pub feed_rejected: IntGaugeVec,
    pub feed_failures: IntCounterVec,
    pub feed_pulls: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let version = IntGauge::new(
            "c2wall_coordinator_version",
            "Latest version of the blocklist.",
        )?;
        let feed_last_success = GaugeVec::new(
            Opts::new(
                "c2wall_feed_last_success_timestamp_seconds",
                "Unix time of the feed's last pull that was accepted (imported or unchanged).",
            ),
            &["feed"],
        )?;
        let feed_entries = IntGaugeVec::new(
            Opts::new(
                "c2wall_feed_entries",
                "Entries of the feed's last accepted import.",
            ),
            &["feed"],
        )?;
        let feed_rejected = IntGaugeVec::new(
            Opts::new(
                "c2wall_feed_rejected_lines",
                "Lines (or objects) the feed's last parsed pull rejected.",
            ),
            &["feed"],
        )?;
        let feed_failures = IntCounterVec::new(
            Opts::new(
                "c2wall_feed_pull_failures_total",
                "Pulls that failed or were refused; the previous import stayed.",
            ),
            &["feed"],
        )?;
        let feed_pulls = IntCounterVec::new(
            Opts::new(
                "c2wall_feed_pulls_total",
                "Pulls by result: imported, unchanged, not_modified, refused, failed.",
            ),
            &["feed", "result"],
        )?;
        registry.register(Box::new(version.clone()))?;
        registry.register(Box::new(feed_last_success.clone()))?;
        registry.register(Box::new(feed_entries.clone()))?;
        registry.register(Box::new(feed_rejected.clone()))?;
        registry.register(Box::new(feed_failures.clone()))?;
        registry.register(Box::new(feed_pulls.clone()))?;
        Ok(Metrics {
            registry,
            version,
            feed_last_success,
            feed_entries,
            feed_rejected,
            feed_failures,
            feed_pulls,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}
