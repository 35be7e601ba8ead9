//! Prometheus metrics. Kernel counters are read and summed over CPUs at scrape
//! time (nothing is polled in between); labels are low-cardinality only.

use c2wall_common::*;
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::error::AgentError;

pub use crate::dataplane::CounterReader;

pub struct Metrics {
    pub registry: Registry,
    pub entries: IntGaugeVec,
    pub slots: IntGaugeVec,
    pub slot_capacity: IntGaugeVec,
    pub allowlist_prefixes: IntGauge,
    pub rejected_lines: IntGauge,
    pub applies: IntCounterVec,
    pub apply_errors: IntCounter,
    pub source_errors: IntCounter,
    pub last_apply_duration: Gauge,
    pub last_apply_timestamp: Gauge,
    pub mode: IntGaugeVec,
    pub attached: IntGaugeVec,
    pub sync_applied_version: IntGauge,
    pub sync_latest_version: IntGauge,
    pub sync_seconds_since_contact: IntGauge,
    pub sync_reconnects: IntCounter,
    /// Which configured replica the agent follows (its position, from 0).
    pub sync_replica: IntGauge,
    pub sync_failovers: IntCounter,
    pub sync_errors: IntCounter,
    pub sync_messages: IntCounterVec,
    pub sync_signature_failures: IntCounter,
    pub sync_behind: IntGauge,
    pub sync_refused: IntCounterVec,
    pub sync_saved_stale: IntGauge,
    pub sync_persist_failures: IntCounter,
    pub apply_duration: HistogramVec,
    pub sightings: IntGauge,
    pub sightings_reported: IntCounter,
    pub follow: crate::follow::metrics::FollowMetrics,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new(counters: CounterReader) -> Result<Self, AgentError> {
        let registry = Registry::new();
        let m = Metrics {
            entries: IntGaugeVec::new(
                opts("c2wall_entries", "Blocklist entries loaded, by family and action."),
                &["family", "action"],
            )?,
            slots: IntGaugeVec::new(
                opts(
                    "c2wall_map_slots",
                    "Slots the active rule set occupies in the kernel, by map.",
                ),
                &["map"],
            )?,
            slot_capacity: IntGaugeVec::new(
                opts(
                    "c2wall_map_slot_capacity",
                    "Slot capacity of each rule map (a reload needs room for two sets).",
                ),
                &["map"],
            )?,
            allowlist_prefixes: IntGauge::with_opts(opts(
                "c2wall_allowlist_prefixes",
                "Protected prefixes loaded.",
            ))?,
            rejected_lines: IntGauge::with_opts(opts(
                "c2wall_source_rejected_lines",
                "Lines the last read of the sources rejected (see the log for file:line).",
            ))?,
            applies: IntCounterVec::new(
                opts(
                    "c2wall_applies_total",
                    "Blocklist applications, by kind (reload = atomic set swap, in_place = diff).",
                ),
                &["kind"],
            )?,
            apply_errors: IntCounter::with_opts(opts(
                "c2wall_apply_errors_total",
                "Applications that failed; the previous list stayed enforced.",
            ))?,
            source_errors: IntCounter::with_opts(opts(
                "c2wall_source_errors_total",
                "Source reads that failed entirely (unreadable file); the previous list stayed enforced.",
            ))?,
            last_apply_duration: Gauge::with_opts(opts(
                "c2wall_last_apply_duration_seconds",
                "Wall time of the last successful application.",
            ))?,
            last_apply_timestamp: Gauge::with_opts(opts(
                "c2wall_last_apply_timestamp_seconds",
                "Unix time of the last successful application.",
            ))?,
            mode: IntGaugeVec::new(
                opts("c2wall_mode", "1 for the global mode in force."),
                &["mode"],
            )?,
            attached: IntGaugeVec::new(
                opts(
                    "c2wall_xdp_attached",
                    "1 per interface the program is attached to, with the XDP mode.",
                ),
                &["interface", "xdp_mode"],
            )?,
            sync_applied_version: IntGauge::with_opts(opts(
                "c2wall_sync_applied_version",
                "Coordinator version the kernel enforces (0 without a coordinator).",
            ))?,
            sync_latest_version: IntGauge::with_opts(opts(
                "c2wall_sync_coordinator_version",
                "Latest version the coordinator announced.",
            ))?,
            sync_seconds_since_contact: IntGauge::with_opts(opts(
                "c2wall_sync_seconds_since_contact",
                "Seconds since the last message from the coordinator (-1: never).",
            ))?,
            sync_reconnects: IntCounter::with_opts(opts(
                "c2wall_sync_reconnects_total",
                "Times the coordinator subscription was started again.",
            ))?,
            sync_replica: IntGauge::with_opts(opts(
                "c2wall_sync_replica",
                "Which of the configured coordinator replicas (--coordinator, in order, \
                 from 0) the agent follows now.",
            ))?,
            sync_failovers: IntCounter::with_opts(opts(
                "c2wall_sync_failovers_total",
                "Times the agent moved to another coordinator replica because the one \
                 in use was unreachable or dropped the stream.",
            ))?,
            sync_errors: IntCounter::with_opts(opts(
                "c2wall_sync_errors_total",
                "Coordinator subscriptions that ended in an error (the list stayed enforced).",
            ))?,
            sync_messages: IntCounterVec::new(
                opts(
                    "c2wall_sync_messages_total",
                    "Complete snapshots and deltas received from the coordinator.",
                ),
                &["kind"],
            )?,
            sync_signature_failures: IntCounter::with_opts(opts(
                "c2wall_sync_signature_failures_total",
                "Snapshots and deltas refused because their signature is missing or not by a \
                 trusted key (the previous list stayed enforced).",
            ))?,
            sync_behind: IntGauge::with_opts(opts(
                "c2wall_sync_behind_seconds",
                "Seconds the applied version has been behind the coordinator's latest (0: in \
                 sync). /readyz fails once it passes sync_unready_after.",
            ))?,
            sync_refused: IntCounterVec::new(
                opts(
                    "c2wall_sync_refused_total",
                    "Snapshots and deltas refused, by reason: gap, digest, invalid, signature, \
                     older (a version below the applied one), lineage (another store's). The \
                     previous list stayed enforced.",
                ),
                &["reason"],
            )?,
            sync_saved_stale: IntGauge::with_opts(opts(
                "c2wall_sync_saved_list_stale",
                "1 while the saved list lags the kernel's (saving failed: disk full or \
                 read-only); the kernel keeps enforcing the newer list.",
            ))?,
            sync_persist_failures: IntCounter::with_opts(opts(
                "c2wall_sync_persist_failures_total",
                "Saves of the applied list that failed.",
            ))?,
            apply_duration: HistogramVec::new(
                HistogramOpts::new(
                    "c2wall_apply_duration_seconds",
                    "Time to put a list into the kernel maps: full (snapshot, files) or delta.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["kind"],
            )?,
            sightings: IntGauge::with_opts(opts(
                "c2wall_sightings",
                "Sightings (subscriber, entry, port) held in memory.",
            ))?,
            sightings_reported: IntCounter::with_opts(opts(
                "c2wall_sightings_reported_total",
                "Sightings sent to the coordinator.",
            ))?,
            follow: crate::follow::metrics::FollowMetrics::register(&registry, counters.clone())?,
            registry,
        };
        let build = IntGaugeVec::new(
            opts("c2wall_build_info", "Build information; always 1."),
            &["version", "abi"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), &ABI_VERSION.to_string()])
            .set(1);
        let r = &m.registry;
        r.register(Box::new(build))?;
        r.register(Box::new(m.entries.clone()))?;
        r.register(Box::new(m.slots.clone()))?;
        r.register(Box::new(m.slot_capacity.clone()))?;
        r.register(Box::new(m.allowlist_prefixes.clone()))?;
        r.register(Box::new(m.rejected_lines.clone()))?;
        r.register(Box::new(m.applies.clone()))?;
        r.register(Box::new(m.apply_errors.clone()))?;
        r.register(Box::new(m.source_errors.clone()))?;
        r.register(Box::new(m.last_apply_duration.clone()))?;
        r.register(Box::new(m.last_apply_timestamp.clone()))?;
        r.register(Box::new(m.mode.clone()))?;
        r.register(Box::new(m.attached.clone()))?;
        r.register(Box::new(m.sync_applied_version.clone()))?;
        r.register(Box::new(m.sync_latest_version.clone()))?;
        r.register(Box::new(m.sync_seconds_since_contact.clone()))?;
        r.register(Box::new(m.sync_reconnects.clone()))?;
        r.register(Box::new(m.sync_replica.clone()))?;
        r.register(Box::new(m.sync_failovers.clone()))?;
        r.register(Box::new(m.sync_errors.clone()))?;
        r.register(Box::new(m.sync_messages.clone()))?;
        r.register(Box::new(m.apply_duration.clone()))?;
        r.register(Box::new(m.sync_signature_failures.clone()))?;
        r.register(Box::new(m.sync_behind.clone()))?;
        r.register(Box::new(m.sync_refused.clone()))?;
        r.register(Box::new(m.sync_saved_stale.clone()))?;
        r.register(Box::new(m.sync_persist_failures.clone()))?;
        for reason in ["gap", "digest", "invalid", "signature", "older", "lineage"] {
            m.sync_refused.with_label_values(&[reason]);
        }
        r.register(Box::new(m.sightings.clone()))?;
        r.register(Box::new(m.sightings_reported.clone()))?;
        r.register(Box::new(KernelCollector::new(counters)?))?;
        Ok(m)
    }

    pub fn observe_sync(&self, s: &crate::sync::SyncStatus) {
        use std::sync::atomic::Ordering::Relaxed;
        self.sync_applied_version
            .set(s.applied_version.load(Relaxed) as i64);
        self.sync_latest_version
            .set(s.latest_version.load(Relaxed) as i64);
        let contact = s.last_contact.load(Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.sync_seconds_since_contact
            .set(if contact == 0 { -1 } else { now - contact });
        let advance = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        advance(&self.sync_reconnects, s.reconnects.load(Relaxed));
        advance(&self.sync_failovers, s.failovers.load(Relaxed));
        self.sync_replica.set(s.replica.load(Relaxed) as i64);
        advance(&self.sync_errors, s.errors.load(Relaxed));
        advance(
            &self.sync_signature_failures,
            s.signature_failures.load(Relaxed),
        );
        advance(
            &self.sync_messages.with_label_values(&["snapshot"]),
            s.snapshots.load(Relaxed),
        );
        advance(
            &self.sync_messages.with_label_values(&["delta"]),
            s.deltas.load(Relaxed),
        );
        self.sync_behind.set(s.behind_seconds(now) as i64);
        for (reason, n) in s.refused.lock().expect("lock").iter() {
            advance(&self.sync_refused.with_label_values(&[reason]), *n);
        }
        self.sync_saved_stale.set(s.disk_stale.load(Relaxed) as i64);
        advance(
            &self.sync_persist_failures,
            s.persist_failures.load(Relaxed),
        );
    }

    pub fn set_mode(&self, mode: &str) {
        for m in ["enforce", "monitor", "off"] {
            self.mode.with_label_values(&[m]).set((m == mode) as i64);
        }
    }

    pub fn render(&self) -> String {
        let mut buf = String::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode_utf8(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        buf
    }
}

const VERDICT_NAMES: [(u32, &str); 4] = [
    (VERDICT_PASS, "pass"),
    (VERDICT_DROP, "drop"),
    (VERDICT_WOULD_DROP, "would_drop"),
    (VERDICT_ALLOWLISTED, "allowlisted"),
];

/// Reads the per-CPU counter map on every scrape.
struct KernelCollector {
    read: CounterReader,
    packets: Opts,
    bytes: Opts,
    other: Opts,
    sampled: Opts,
    descs: Vec<Desc>,
}

impl KernelCollector {
    fn new(read: CounterReader) -> Result<Self, AgentError> {
        let packets = opts(
            "c2wall_packets_total",
            "IP packets seen by the XDP program, by verdict, the side that matched \
             (to_cc = destination listed, from_cc = source listed; none for pass) and family.",
        );
        let bytes = opts(
            "c2wall_bytes_total",
            "Bytes of the packets in c2wall_packets_total (frame length at XDP).",
        );
        let other = opts(
            "c2wall_unmatched_packets_total",
            "Packets passed without a lookup, by reason: non_ip, parse_error \
             (truncated or malformed headers), mode_off; and non-first fragments seen (fragment).",
        );
        let sampled = opts(
            "c2wall_sampled_events_total",
            "Drop events for sightings, by result: written to the ring buffer, suppressed \
             (the per-CPU budget for that second was used up), lost (ring buffer full).",
        );
        let mut descs = Vec::new();
        for (o, labels) in [
            (
                &packets,
                vec!["verdict", "direction", "family", "interface"],
            ),
            (&bytes, vec!["verdict", "direction", "family", "interface"]),
            (&other, vec!["reason", "interface"]),
            (&sampled, vec!["result"]),
        ] {
            descs.push(Desc::new(
                o.name.clone(),
                o.help.clone(),
                labels.into_iter().map(String::from).collect(),
                Default::default(),
            )?);
        }
        Ok(KernelCollector {
            read,
            packets,
            bytes,
            other,
            sampled,
            descs,
        })
    }
}

impl Collector for KernelCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let per_iface = match (self.read)() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "reading kernel counters");
                return Vec::new();
            }
        };
        let lbl = ["verdict", "direction", "family", "interface"];
        let (Ok(pk), Ok(by), Ok(ot), Ok(sa)) = (
            IntCounterVec::new(self.packets.clone(), &lbl),
            IntCounterVec::new(self.bytes.clone(), &lbl),
            IntCounterVec::new(self.other.clone(), &["reason", "interface"]),
            IntCounterVec::new(self.sampled.clone(), &["result"]),
        ) else {
            return Vec::new();
        };
        for (iface, values) in &per_iface {
            let get = |i: u32| values.get(i as usize).copied().unwrap_or(0);
            for (v, vname) in VERDICT_NAMES {
                for (d, dname) in [(DIR_TO_CC, "to_cc"), (DIR_FROM_CC, "from_cc")] {
                    if v == VERDICT_PASS && d == DIR_FROM_CC {
                        continue;
                    }
                    let dname = if v == VERDICT_PASS { "none" } else { dname };
                    for (f, fname) in [(FAM_IDX_V4, "ipv4"), (FAM_IDX_V6, "ipv6")] {
                        pk.with_label_values(&[vname, dname, fname, iface])
                            .inc_by(get(verdict_counter(v, d, f, UNIT_PACKETS)));
                        by.with_label_values(&[vname, dname, fname, iface])
                            .inc_by(get(verdict_counter(v, d, f, UNIT_BYTES)));
                    }
                }
            }
            for (i, reason) in [
                (CNT_NON_IP, "non_ip"),
                (CNT_PARSE_ERROR, "parse_error"),
                (CNT_MODE_OFF, "mode_off"),
                (CNT_FRAGMENT, "fragment"),
            ] {
                ot.with_label_values(&[reason, iface]).inc_by(get(i));
            }
            for (i, result) in [
                (CNT_SAMPLED, "written"),
                (CNT_SAMPLE_SUPPRESSED, "suppressed"),
                (CNT_SAMPLE_LOST, "lost"),
            ] {
                sa.with_label_values(&[result]).inc_by(get(i));
            }
        }
        let mut out = pk.collect();
        out.extend(by.collect());
        out.extend(ot.collect());
        out.extend(sa.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn names_follow_conventions_and_kernel_values_are_exposed() {
        let reader: CounterReader = Arc::new(|| {
            let mut v = vec![0u64; COUNTER_SLOTS as usize];
            v[verdict_counter(VERDICT_DROP, DIR_FROM_CC, FAM_IDX_V6, UNIT_PACKETS) as usize] = 7;
            v[CNT_PARSE_ERROR as usize] = 3;
            v[CNT_SAMPLED as usize] = 2;
            let mut other = vec![0u64; COUNTER_SLOTS as usize];
            other[CNT_SAMPLED as usize] = 1;
            other[CNT_SAMPLE_LOST as usize] = 4;
            Ok(vec![("eth0".into(), v), ("other".into(), other)])
        });
        let m = Metrics::new(reader).unwrap();
        m.set_mode("monitor");
        let text = m.render();
        assert!(
            text.contains(
                "c2wall_packets_total{direction=\"from_cc\",family=\"ipv6\",interface=\"eth0\",verdict=\"drop\"} 7"
            ),
            "{text}"
        );
        assert!(text.contains(
            "c2wall_unmatched_packets_total{interface=\"eth0\",reason=\"parse_error\"} 3"
        ));
        assert!(text.contains("c2wall_sampled_events_total{result=\"written\"} 3"));
        assert!(text.contains("c2wall_sampled_events_total{result=\"lost\"} 4"));
        m.apply_duration
            .with_label_values(&["delta"])
            .observe(0.004);
        assert!(m
            .render()
            .contains("c2wall_apply_duration_seconds_bucket{kind=\"delta\",le=\"0.005\"} 1"));
        assert!(text.contains("c2wall_mode{mode=\"monitor\"} 1"));
        assert!(text.contains("c2wall_build_info{"));
        for fam in m.registry.gather() {
            let name = fam.name();
            assert!(name.starts_with("c2wall_"), "{name}");
            assert!(!fam.help().is_empty(), "{name} has no help");
            if fam.get_field_type() == prometheus::proto::MetricType::COUNTER {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} must end in _total"
                );
            }
            for metric in fam.get_metric() {
                for l in metric.get_label() {
                    assert!(
                        l.value().parse::<std::net::IpAddr>().is_err(),
                        "{name} has an IP address as a label value: {}",
                        l.value()
                    );
                }
            }
        }
    }
}
