//! The pull loop: fetch, parse, keep what the feed's policy keeps, refuse
//! suspicious pulls, import the rest as one version. A failed or refused pull
//! never touches the feed's records: the previous import stays enforced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2wall_proto::v1 as pb;

use super::config::Feed;
use super::fetch::{fetch, Fetched, Validators};
use crate::core::{now, Coordinator};
use crate::import::{ImportOptions, ImportOutcome};
use crate::metrics::Metrics;

/// What each feed is doing, for `c2wall feed list` and /metrics.
pub struct Board {
    pub states: Mutex<Vec<pb::FeedState>>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// Imported; the outcome says whether a version was made.
    Imported(ImportOutcome),
    NotModified,
    Refused(String),
    Failed(String),
}

impl Pull {
    fn label(&self) -> &'static str {
        match self {
            Pull::Imported(o) if o.version.is_some() => "imported",
            Pull::Imported(_) => "unchanged",
            Pull::NotModified => "not_modified",
            Pull::Refused(_) => "refused",
            Pull::Failed(_) => "failed",
        }
    }
}

pub struct Runner {
    coord: Arc<Coordinator>,
    pub feeds: Vec<Feed>,
    pub board: Arc<Board>,
    client: reqwest::Client,
    validators: Mutex<Vec<Validators>>,
}

impl Runner {
    pub fn new(coord: Arc<Coordinator>, feeds: Vec<Feed>, metrics: Arc<Metrics>) -> Arc<Self> {
        let states = feeds
            .iter()
            .map(|f| pb::FeedState {
                name: f.name.clone(),
                format: f.format.to_string(),
                location: f.location.to_string(),
                interval_seconds: f.interval,
                ..Default::default()
            })
            .collect();
        // Every feed's series exist from the start (at 0), so alerts and
        // dashboards see a feed that never succeeded.
        for f in &feeds {
            let name = f.name.as_str();
            metrics.feed_failures.with_label_values(&[name]);
            metrics.feed_entries.with_label_values(&[name]);
            metrics.feed_rejected.with_label_values(&[name]);
            metrics.feed_last_success.with_label_values(&[name]);
            for r in ["imported", "unchanged", "not_modified", "refused", "failed"] {
                metrics.feed_pulls.with_label_values(&[name, r]);
            }
        }
        let n = feeds.len();
        Arc::new(Runner {
            coord,
            feeds,
            board: Arc::new(Board {
                states: Mutex::new(states),
                metrics,
            }),
            client: reqwest::Client::builder()
                .user_agent(concat!("c2wall-coordinator/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("HTTP client"),
            validators: Mutex::new(vec![Validators::default(); n]),
        })
    }

    /// One pull of feed `i`, recorded on the board.
    pub async fn pull(self: &Arc<Self>, i: usize) -> Pull {
        let feed = self.feeds[i].clone();
        let t = now();
        let prev = self.validators.lock().expect("lock")[i].clone();
        let result = match fetch(&self.client, &feed, &prev).await {
            Err(e) => Pull::Failed(e),
            Ok(Fetched::NotModified) => Pull::NotModified,
            Ok(Fetched::Body(body, validators)) => {
                let me = self.clone();
                let f = feed.clone();
                let r = tokio::task::spawn_blocking(move || me.import(&f, i, &body, t))
                    .await
                    .unwrap_or_else(|e| Pull::Failed(format!("import task: {e}")));
                // Only a body we accepted may be skipped next time.
                if matches!(r, Pull::Imported(_)) {
                    self.validators.lock().expect("lock")[i] = validators;
                }
                r
            }
        };
        self.record(i, &feed, t, &result);
        result
    }

    fn import(&self, feed: &Feed, i: usize, body: &[u8], t: i64) -> Pull {
        let parsed = match feed.format.parse(body, t) {
            Ok(p) => p,
            Err(e) => return Pull::Failed(e.to_string()),
        };
        self.board
            .metrics
            .feed_rejected
            .with_label_values(&[&feed.name])
            .set(parsed.rejected.len() as i64);
        self.board.states.lock().expect("lock")[i].rejected = parsed.rejected.len() as u64;
        for r in parsed.rejected.iter().take(5) {
            tracing::warn!(feed = %feed.name, "rejected {r}");
        }
        let (records, dropped) = feed.policy.records(&parsed);
        let previous = self.coord.source_count(&feed.name);
        if let Some(why) = feed.guard.refuse(&parsed, records.len(), previous) {
            return Pull::Refused(why);
        }
        if dropped.too_short + dropped.low_confidence > 0 {
            tracing::info!(feed = %feed.name, too_short = dropped.too_short,
                low_confidence = dropped.low_confidence, "entries left out by the feed's policy");
        }
        let reason = format!(
            "feed {} ({}) from {}",
            feed.name, feed.format, feed.location
        );
        match self.coord.replace_source(
            &feed.name,
            records,
            &ImportOptions { ttl: feed.ttl },
            &crate::core::Origin::internal(format!("feed:{}", feed.name)),
            &reason,
        ) {
            Ok(o) => match o.held {
                Some(id) => Pull::Refused(format!(
                    "held for an admin's confirmation as pending #{id} (c2wall pending)"
                )),
                None => {
                    for r in &o.refusals {
                        tracing::warn!(feed = %feed.name, "refused by the guards: {r}");
                    }
                    Pull::Imported(o)
                }
            },
            Err(e) => Pull::Failed(e.to_string()),
        }
    }

    fn record(&self, i: usize, feed: &Feed, t: i64, r: &Pull) {
        let m = &self.board.metrics;
        m.feed_pulls
            .with_label_values(&[&feed.name, r.label()])
            .inc();
        let mut states = self.board.states.lock().expect("lock");
        let s = &mut states[i];
        s.last_attempt = t;
        match r {
            Pull::Imported(o) => {
                let entries = (o.added + o.updated + o.unchanged) as u64;
                s.last_success = t;
                s.entries = entries;
                s.last_error.clear();
                if let Some(v) = &o.version {
                    s.last_version = v.version;
                    m.version.set(v.version as i64);
                }
                m.feed_entries
                    .with_label_values(&[&feed.name])
                    .set(entries as i64);
                m.feed_last_success
                    .with_label_values(&[&feed.name])
                    .set(t as f64);
                tracing::info!(feed = %feed.name, added = o.added, updated = o.updated,
                    withdrawn = o.withdrawn, unchanged = o.unchanged,
                    version = o.version.as_ref().map(|v| v.version), "feed imported");
            }
            Pull::NotModified => {
                s.last_success = t;
                s.last_error.clear();
                m.feed_last_success
                    .with_label_values(&[&feed.name])
                    .set(t as f64);
            }
            Pull::Refused(why) | Pull::Failed(why) => {
                s.failures += 1;
                s.last_error = why.clone();
                m.feed_failures.with_label_values(&[&feed.name]).inc();
                tracing::error!(feed = %feed.name, error = %why,
                    "feed pull not imported; the previous import stays");
            }
        }
    }

    /// Pulls every feed now and then every `interval`, until the task ends.
    pub fn spawn(self: &Arc<Self>) {
        for i in 0..self.feeds.len() {
            let me = self.clone();
            tokio::spawn(async move {
                let every = Duration::from_secs(me.feeds[i].interval);
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // With replicas, one pulls (the lease holder).
                    let c = me.coord.clone();
                    if tokio::task::spawn_blocking(move || c.leads())
                        .await
                        .unwrap_or(false)
                    {
                        me.pull(i).await;
                    }
                }
            });
        }
    }
}
