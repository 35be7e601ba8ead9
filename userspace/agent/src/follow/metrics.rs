//! Metrics of following DNS answers: what the program saw (kernel counters,
//! summed at scrape time) and what the agent did with the answers.

use c2wall_common::*;
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::dataplane::CounterReader;
use crate::error::AgentError;

pub struct FollowMetrics {
    /// Answers the agent read, by outcome.
    pub answers: IntCounterVec,
    pub added: IntCounter,
    pub refreshed: IntCounter,
    pub expired: IntCounter,
    pub refused: IntCounterVec,
    pub addresses: IntGauge,
    pub names: IntGauge,
}

/// Outcomes of an answer the agent read.
pub const ANSWER_OUTCOMES: [&str; 5] = [
    "followed",
    "unlisted",
    "unparsed",
    "disabled",
    "other_resolver",
];
/// Reasons an answered address was not added (follow::table::Refused).
pub const REFUSED_REASONS: [&str; 4] = ["special", "allowlisted", "per_name", "total"];

impl FollowMetrics {
    pub fn register(r: &Registry, counters: CounterReader) -> Result<Self, AgentError> {
        let m = FollowMetrics {
            answers: IntCounterVec::new(
                Opts::new(
                    "c2wall_dns_answers_total",
                    "DNS answers for listed names read from the program, by outcome: followed \
                     (addresses taken), unlisted (the name is not listed: a key collision or a \
                     name withdrawn meanwhile), unparsed (not a usable answer), disabled \
                     ([follow] enabled = false), other_resolver (not from [follow] resolvers).",
                ),
                &["outcome"],
            )?,
            added: IntCounter::new(
                "c2wall_dns_addresses_added_total",
                "Addresses added as entries from DNS answers.",
            )?,
            refreshed: IntCounter::new(
                "c2wall_dns_addresses_refreshed_total",
                "Answered addresses already held, whose time was extended.",
            )?,
            expired: IntCounter::new(
                "c2wall_dns_addresses_expired_total",
                "Addresses from DNS answers removed: their time ran out or their name was \
                 withdrawn.",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "c2wall_dns_addresses_refused_total",
                    "Answered addresses not added, by reason: special (special-purpose or \
                     private), allowlisted, per_name or total (bounds).",
                ),
                &["reason"],
            )?,
            addresses: IntGauge::new(
                "c2wall_dns_addresses",
                "Addresses held from DNS answers now.",
            )?,
            names: IntGauge::new(
                "c2wall_dns_names_followed",
                "Listed names with at least one address held now.",
            )?,
        };
        for o in ANSWER_OUTCOMES {
            m.answers.with_label_values(&[o]);
        }
        for reason in REFUSED_REASONS {
            m.refused.with_label_values(&[reason]);
        }
        r.register(Box::new(m.answers.clone()))?;
        r.register(Box::new(m.added.clone()))?;
        r.register(Box::new(m.refreshed.clone()))?;
        r.register(Box::new(m.expired.clone()))?;
        r.register(Box::new(m.refused.clone()))?;
        r.register(Box::new(m.addresses.clone()))?;
        r.register(Box::new(m.names.clone()))?;
        r.register(Box::new(KernelDns::new(counters)?))?;
        Ok(m)
    }
}

/// `c2wall_dns_responses_total`: the program's DNS counters.
struct KernelDns {
    read: CounterReader,
    opts: Opts,
    desc: Vec<Desc>,
}

impl KernelDns {
    fn new(read: CounterReader) -> Result<Self, AgentError> {
        let opts = Opts::new(
            "c2wall_dns_responses_total",
            "DNS responses the program looked at (while some name is listed), by result: seen \
             (every one), copied (its name is listed; handed to the agent), lost (listed, but \
             the answer ring buffer was full), unparsed (the question could not be walked).",
        );
        let desc = vec![Desc::new(
            opts.name.clone(),
            opts.help.clone(),
            vec!["result".into()],
            Default::default(),
        )?];
        Ok(KernelDns { read, opts, desc })
    }
}

impl Collector for KernelDns {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(per_iface) = (self.read)() else {
            return Vec::new();
        };
        let Ok(c) = IntCounterVec::new(self.opts.clone(), &["result"]) else {
            return Vec::new();
        };
        for (i, result) in [
            (CNT_DNS_RESPONSES, "seen"),
            (CNT_DNS_FOLLOWED, "copied"),
            (CNT_DNS_LOST, "lost"),
            (CNT_DNS_UNPARSED, "unparsed"),
        ] {
            let n: u64 = per_iface
                .iter()
                .map(|(_, v)| v.get(i as usize).copied().unwrap_or(0))
                .sum();
            c.with_label_values(&[result]).inc_by(n);
        }
        c.collect()
    }
}
