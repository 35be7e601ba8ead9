//! The RPZ server's metrics: requests by kind and result, bytes sent,
//! NOTIFYs, and the zone's serial and size. Labels are closed sets; no
//! address or name is ever a label.

use prometheus::{IntCounterVec, IntGauge, Opts};

pub struct RpzMetrics {
    pub requests: IntCounterVec,
    pub bytes: IntCounterVec,
    pub notifies: IntCounterVec,
    pub serial: IntGauge,
    pub records: IntGauge,
    pub names: IntGauge,
}

impl RpzMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(RpzMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "c2wall_rpz_requests_total",
                    "RPZ requests by kind (soa, axfr, ixfr, other) and result (ok; incremental \
                     or whole_zone for an IXFR answered; refused, bad_signature, bad_key, \
                     bad_time, not_this_zone, unsupported, axfr_udp, no_serial).",
                ),
                &["kind", "result"],
            )?,
            bytes: IntCounterVec::new(
                Opts::new(
                    "c2wall_rpz_sent_bytes_total",
                    "Bytes of DNS messages sent in answers, by request kind.",
                ),
                &["kind"],
            )?,
            notifies: IntCounterVec::new(
                Opts::new(
                    "c2wall_rpz_notifies_total",
                    "NOTIFY messages to secondaries by result (acknowledged, unanswered).",
                ),
                &["result"],
            )?,
            serial: IntGauge::new("c2wall_rpz_serial", "SOA serial of the zone served.")?,
            records: IntGauge::new(
                "c2wall_rpz_records",
                "Policy records in the zone served (a wildcard entry has two).",
            )?,
            names: IntGauge::new(
                "c2wall_rpz_names",
                "Domain entries listed (drop and monitor; monitor entries have no record).",
            )?,
        })
    }

    pub fn register(&self, m: &crate::metrics::Metrics) -> Result<(), prometheus::Error> {
        m.register(Box::new(self.requests.clone()))?;
        m.register(Box::new(self.bytes.clone()))?;
        m.register(Box::new(self.notifies.clone()))?;
        m.register(Box::new(self.serial.clone()))?;
        m.register(Box::new(self.records.clone()))?;
        m.register(Box::new(self.names.clone()))
    }
}
