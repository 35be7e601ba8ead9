//! The coordinator's Prometheus metrics (feeds here; more with the
//! observability work). Feed names are configured, so they are a bounded
//! label; no entry or agent ever is.

use prometheus::{
    Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub version: IntGauge,
    /// 1 on the replica that runs once-only work (always 1 with SQLite).
    pub leads: IntGauge,
    pub feed_last_success: GaugeVec,
    pub feed_entries: IntGaugeVec,
    pub feed_rejected: IntGaugeVec,
    pub feed_failures: IntCounterVec,
    pub feed_pulls: IntCounterVec,
    pub publishes: IntCounterVec,
    pub sightings_reported: prometheus::IntCounter,
    pub imports_abandoned: IntCounterVec,
}

/// Why an import stream committed nothing.
pub const IMPORT_ABANDONED: [&str; 5] = [
    "unterminated",
    "idle",
    "too_large",
    "invalid",
    "stream_error",
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let version = IntGauge::new(
            "c2wall_coordinator_version",
            "Latest version of the blocklist.",
        )?;
        let leads = IntGauge::new(
            "c2wall_coordinator_leads",
            "1 when this replica holds the lease for once-only work (expiry, promotions, \
             feed pulls); exactly one replica of a centre should.",
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
        let publishes = IntCounterVec::new(
            Opts::new(
                "c2wall_publishes_total",
                "Publish, import and rollback calls, by result: ok, rejected (invalid, \
                 not found, refused).",
            ),
            &["result"],
        )?;
        let sightings_reported = prometheus::IntCounter::new(
            "c2wall_sightings_received_total",
            "Sightings received from agents.",
        )?;
        let imports_abandoned = IntCounterVec::new(
            Opts::new(
                "c2wall_imports_abandoned_total",
                "Import streams that committed nothing, by reason: unterminated (ended \
                 without a chunk marked end: cancelled or cut off), idle, too_large, \
                 invalid (an entry, source, reason or TTL refused), stream_error.",
            ),
            &["reason"],
        )?;
        for r in IMPORT_ABANDONED {
            imports_abandoned.with_label_values(&[r]);
        }
        registry.register(Box::new(imports_abandoned.clone()))?;
        registry.register(Box::new(publishes.clone()))?;
        registry.register(Box::new(sightings_reported.clone()))?;
        registry.register(Box::new(version.clone()))?;
        registry.register(Box::new(leads.clone()))?;
        registry.register(Box::new(feed_last_success.clone()))?;
        registry.register(Box::new(feed_entries.clone()))?;
        registry.register(Box::new(feed_rejected.clone()))?;
        registry.register(Box::new(feed_failures.clone()))?;
        registry.register(Box::new(feed_pulls.clone()))?;
        Ok(Metrics {
            registry,
            version,
            leads,
            feed_last_success,
            feed_entries,
            feed_rejected,
            feed_failures,
            feed_pulls,
            publishes,
            sightings_reported,
            imports_abandoned,
        })
    }

    /// Adds a collector (state at scrape time, RPC timings).
    pub fn register(
        &self,
        c: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(c)
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

/// Values computed from the coordinator's state at scrape time: entries by
/// source / category / action, connected agents, agent lag.
pub struct StateCollector {
    coord: std::sync::Arc<crate::core::Coordinator>,
    descs: Vec<prometheus::core::Desc>,
}

/// Buckets of the agent lag histograms.
const LAG_VERSIONS: [f64; 8] = [0.0, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0, 10000.0];
const LAG_SECONDS: [f64; 9] = [0.0, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 86400.0];

impl StateCollector {
    pub fn new(coord: std::sync::Arc<crate::core::Coordinator>) -> Result<Self, prometheus::Error> {
        use prometheus::core::Desc;
        let d = |n: &str, h: &str, l: &[&str]| {
            Desc::new(
                n.into(),
                h.into(),
                l.iter().map(|s| s.to_string()).collect(),
                Default::default(),
            )
        };
        Ok(StateCollector {
            coord,
            descs: vec![
                d(
                    "c2wall_coordinator_entries",
                    "Records, by source, category and action.",
                    &["source", "category", "action"],
                )?,
                d(
                    "c2wall_connected_agents",
                    "Agents with an open subscription.",
                    &[],
                )?,
                d(
                    "c2wall_agent_lag_versions",
                    "Known agents by how many versions they are behind the latest.",
                    &[],
                )?,
                d(
                    "c2wall_agent_lag_seconds",
                    "Known agents by how long ago the first version they lack was published \
                     (0 when current).",
                    &[],
                )?,
            ],
        })
    }
}

impl prometheus::core::Collector for StateCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::{Histogram, HistogramOpts, IntGauge};
        let mut out = Vec::new();
        let entries = match IntGaugeVec::new(
            Opts::new(
                "c2wall_coordinator_entries",
                "Records, by source, category and action.",
            ),
            &["source", "category", "action"],
        ) {
            Ok(e) => e,
            Err(_) => return out,
        };
        for ((source, category, action), n) in self.coord.record_counts() {
            entries
                .with_label_values(&[&source, &category, &action])
                .set(n as i64);
        }
        out.extend(entries.collect());
        let (Ok(connected), Ok(lag_v), Ok(lag_s)) = (
            IntGauge::new(
                "c2wall_connected_agents",
                "Agents with an open subscription.",
            ),
            Histogram::with_opts(
                HistogramOpts::new(
                    "c2wall_agent_lag_versions",
                    "Known agents by how many versions they are behind the latest.",
                )
                .buckets(LAG_VERSIONS.to_vec()),
            ),
            Histogram::with_opts(
                HistogramOpts::new(
                    "c2wall_agent_lag_seconds",
                    "Known agents by how long ago the first version they lack was published \
                     (0 when current).",
                )
                .buckets(LAG_SECONDS.to_vec()),
            ),
        ) else {
            return out;
        };
        match self.coord.agent_lags() {
            Ok((n_connected, lags)) => {
                connected.set(n_connected as i64);
                for (versions, seconds) in lags {
                    lag_v.observe(versions as f64);
                    lag_s.observe(seconds as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading agents for metrics"),
        }
        out.extend(connected.collect());
        out.extend(lag_v.collect());
        out.extend(lag_s.collect());
        out
    }
}

/// A tower layer timing every gRPC call by method (the path's last segment;
/// a fixed set, so a bounded label).
#[derive(Clone)]
pub struct RpcTimer(pub prometheus::HistogramVec);

impl RpcTimer {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(RpcTimer(prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "c2wall_rpc_duration_seconds",
                "gRPC call latency by method (streams: until the stream is set up).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method"],
        )?))
    }
}

impl<S> tower_layer::Layer<S> for RpcTimer {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            hist: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    hist: prometheus::HistogramVec,
}

impl<S, B> tower_service::Service<http::Request<B>> for Timed<S>
where
    S: tower_service::Service<http::Request<B>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        const KNOWN: [&str; 13] = [
            "Subscribe",
            "ReportStatus",
            "ReportSightings",
            "Publish",
            "List",
            "Get",
            "Explain",
            "History",
            "Rollback",
            "Agents",
            "Import",
            "Feeds",
            "Sightings",
        ];
        let method = req.uri().path().rsplit('/').next().unwrap_or("");
        let method = KNOWN
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        let timer = self.hist.with_label_values(&[method]).start_timer();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            timer.observe_duration();
            r
        })
    }
}
