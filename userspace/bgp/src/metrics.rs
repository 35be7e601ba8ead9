//! The exporter's Prometheus metrics. Peer names are configured (a bounded
//! label, never the address).

use std::sync::{atomic::Ordering::Relaxed, Arc, OnceLock};

use c2wall_subscriber::SyncStatus;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::config::Peer;
use crate::routes::{PeerPlan, Refused};

pub struct Metrics {
    registry: Registry,
    routes: IntGaugeVec,
    refused: IntGaugeVec,
    session_up: IntGaugeVec,
    last_update: IntGauge,
    pub applied_version: IntGauge,
    refused_versions: IntCounterVec,
    last_contact: IntGauge,
    sync: OnceLock<Arc<SyncStatus>>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let routes = IntGaugeVec::new(
            Opts::new(
                "c2wall_bgp_routes",
                "Routes this exporter announces to each peer, by kind (rtbh, flowspec).",
            ),
            &["peer", "kind"],
        )?;
        let refused = IntGaugeVec::new(
            Opts::new(
                "c2wall_bgp_refused_entries",
                "Entries of the list not announced to each peer, by reason (monitor, protected, \
                 floor, no_flowspec, ceiling).",
            ),
            &["peer", "reason"],
        )?;
        let session_up = IntGaugeVec::new(
            Opts::new(
                "c2wall_bgp_session_up",
                "1 while the BGP session with the peer is established.",
            ),
            &["peer"],
        )?;
        let last_update = IntGauge::new(
            "c2wall_bgp_last_update_timestamp_seconds",
            "Unix time BIRD last took a new list.",
        )?;
        let applied_version = IntGauge::new(
            "c2wall_bgp_applied_version",
            "The coordinator version whose list the routers are told.",
        )?;
        let refused_versions = IntCounterVec::new(
            Opts::new(
                "c2wall_bgp_refused_versions_total",
                "Versions from the coordinator refused, by reason (signature, digest, lineage, \
                 older, gap, invalid); the routers keep the last verified list.",
            ),
            &["reason"],
        )?;
        let last_contact = IntGauge::new(
            "c2wall_bgp_last_contact_timestamp_seconds",
            "Unix time of the last message from the coordinator (0: never).",
        )?;
        registry.register(Box::new(refused_versions.clone()))?;
        registry.register(Box::new(last_contact.clone()))?;
        for c in [&routes, &refused, &session_up] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(last_update.clone()))?;
        registry.register(Box::new(applied_version.clone()))?;
        Ok(Metrics {
            registry,
            routes,
            refused,
            session_up,
            last_update,
            applied_version,
            refused_versions,
            last_contact,
            sync: OnceLock::new(),
        })
    }

    pub fn planned(&self, peers: &[Peer], plans: &[PeerPlan]) {
        for (p, plan) in peers.iter().zip(plans) {
            self.routes
                .with_label_values(&[&p.name, "rtbh"])
                .set(plan.rtbh.len() as i64);
            self.routes
                .with_label_values(&[&p.name, "flowspec"])
                .set(plan.flows.len() as i64);
            for r in Refused::ALL {
                let n = plan.refused.iter().filter(|(_, x)| *x == r).count();
                self.refused
                    .with_label_values(&[&p.name, r.as_str()])
                    .set(n as i64);
            }
        }
    }

    pub fn updated(&self) {
        self.last_update.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        );
    }

    pub fn sessions(&self, s: &[(String, String)]) {
        for (name, state) in s {
            self.session_up
                .with_label_values(&[name])
                .set((state == "Established") as i64);
        }
    }

    /// The sync client's status, read at each scrape.
    pub fn follow(&self, s: Arc<SyncStatus>) {
        let _ = self.sync.set(s);
    }

    pub fn render(&self) -> String {
        if let Some(s) = self.sync.get() {
            self.last_contact.set(s.last_contact.load(Relaxed));
            let refused = s.refused.lock().expect("lock").clone();
            for reason in ["signature", "digest", "lineage", "older", "gap", "invalid"] {
                let c = self.refused_versions.with_label_values(&[reason]);
                let total = refused.get(reason).copied().unwrap_or(0);
                c.inc_by(total.saturating_sub(c.get()));
            }
        }
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
