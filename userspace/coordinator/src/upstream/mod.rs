//! Following upstream coordinators (`[[upstream]]`): an ISP's coordinator
//! subscribes to the national centre (or any other coordinator) like an
//! edge agent does, through the same client (`c2wall-subscriber`): every
//! version's signature, digest and lineage verified, the last verified set
//! persisted, resumed by version and digest. Each upstream's set becomes
//! the records of source `upstream:NAME`, with their provenance chain,
//! through the local policy (`config`, `policy`), the guards, the protected
//! list and the change breaker (`follower`). What this coordinator then
//! serves is its own versions, signed with its own key.
//!
//! Data flows one way: upstream stream -> subscriber (verify, persist) ->
//! follower (policy, import) -> store -> this coordinator's own stream.

pub mod collector;
pub mod config;
pub mod follower;
pub mod policy;
pub mod sightings;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use c2wall_model::{sign::Trust, Prefix, Record};
use c2wall_proto::v1 as pb;
use c2wall_subscriber::{ApplyFn, ModeFn, SyncClient, SyncStatus, Synced, SyncedSet};

pub use config::{Upstream, UpstreamConfig};
pub use follower::{Follower, Veto};

use crate::core::Coordinator;
use crate::error::CoordError;

/// Every upstream followed, for the services (feed list, explain) and
/// metrics.
#[derive(Default)]
pub struct Board {
    pub followers: Vec<Arc<Follower>>,
    /// The stream clients and workers: following stops with the board.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Board {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The saved upstream set's file in `dir`.
pub fn state_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("upstream-{name}.set"))
}

impl Board {
    /// Loads each upstream's saved set and starts following it (inside a
    /// tokio runtime). `default_dir` holds the saved sets of upstreams
    /// without a `state_dir`.
    pub fn start(
        coord: Arc<Coordinator>,
        upstreams: Vec<Upstream>,
        default_dir: &Path,
    ) -> Result<Arc<Board>, CoordError> {
        let mut board = Board::default();
        for u in upstreams {
            let (f, tasks) = start_one(coord.clone(), u, default_dir)?;
            board.followers.push(f);
            board.tasks.extend(tasks);
        }
        Ok(Arc::new(board))
    }

    /// One row per upstream for `c2wall feed list` (format `upstream`).
    pub fn feed_states(&self) -> Vec<pb::FeedState> {
        use std::sync::atomic::Ordering::Relaxed;
        self.followers
            .iter()
            .map(|f| {
                let v = f.view.lock().expect("lock");
                let sync_error = f.status.last_error.lock().expect("lock").clone();
                pb::FeedState {
                    name: f.source.clone(),
                    format: "upstream".into(),
                    location: f.upstream.urls.join(", "),
                    interval_seconds: 0,
                    last_attempt: v.last_write,
                    last_success: f.status.last_contact.load(Relaxed),
                    entries: v.entries as u64,
                    rejected: 0,
                    failures: f.status.errors.load(Relaxed),
                    last_error: match (&v.held, sync_error.is_empty()) {
                        (Some(id), _) => format!(
                            "upstream change held for an admin as pending #{id} (c2wall pending)"
                        ),
                        (None, false) => sync_error,
                        (None, true) => v.last_error.clone(),
                    },
                    last_version: 0,
                    upstream_version: f.status.applied_version.load(Relaxed),
                    upstream_latest: f.status.latest_version.load(Relaxed),
                    vetoed: v.vetoed.len() as u64,
                }
            })
            .collect()
    }

    /// Upstream entries containing `p` that this coordinator keeps out.
    pub fn vetoes_covering(&self, p: &Prefix) -> Vec<Veto> {
        self.followers
            .iter()
            .flat_map(|f| f.vetoes_covering(p))
            .collect()
    }

    pub fn vetoes_covering_name(&self, name: &c2wall_model::DomainName) -> Vec<Veto> {
        self.followers
            .iter()
            .flat_map(|f| f.vetoes_covering_name(name))
            .collect()
    }
}

fn start_one(
    coord: Arc<Coordinator>,
    u: Upstream,
    default_dir: &Path,
) -> Result<(Arc<Follower>, Vec<tokio::task::JoinHandle<()>>), CoordError> {
    let dir = u.state_dir.clone().unwrap_or_else(|| default_dir.into());
    std::fs::create_dir_all(&dir).map_err(|e| {
        CoordError::Setting(format!(
            "[[upstream]] `{}`: state_dir {}: {e}",
            u.name,
            dir.display()
        ))
    })?;
    let file = state_file(&dir, &u.name);
    let set = SyncedSet::<Record>::load(&file)
        .map_err(|e| CoordError::Setting(format!("[[upstream]] `{}`: {e}", u.name)))?
        .unwrap_or_default();
    if set.version > 0 {
        tracing::info!(upstream = %u.name, version = set.version, entries = set.entries.len(),
            "loaded the last verified upstream set");
    }
    let trust = Trust::from_hex(u.trust_keys.iter().map(String::as_str))
        .map_err(|e| CoordError::Setting(format!("[[upstream]] `{}`: {e}", u.name)))?;
    let endpoints = u
        .urls
        .iter()
        .map(|url| {
            u.tls.endpoint(url).map_err(|e| {
                CoordError::Setting(format!("[[upstream]] `{}`: url `{url}`: {e}", u.name))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bearer = match &u.token_file {
        None => c2wall_model::wire::Bearer::default(),
        Some(f) => {
            let t = std::fs::read_to_string(f).map_err(|e| {
                CoordError::Setting(format!("[[upstream]] `{}`: {}: {e}", u.name, f.display()))
            })?;
            c2wall_model::wire::Bearer::new(Some(&t)).map_err(|e| {
                CoordError::Setting(format!("[[upstream]] `{}`: {}: {e}", u.name, f.display()))
            })?
        }
    };
    let status = Arc::new(SyncStatus::default());
    let name = u.name.clone();
    let follower = Arc::new_cyclic(|me: &std::sync::Weak<Follower>| {
        let me = me.clone();
        // The set is verified and about to be saved: the worker writes it.
        let apply: ApplyFn<Record> = Arc::new(move |_set, changes| {
            Ok(match me.upgrade() {
                Some(f) => {
                    f.touched.lock().expect("lock").note(changes);
                    f.wake.notify_one();
                    f.report()
                }
                None => pb::AgentStatus::default(),
            })
        });
        let on_mode: ModeFn = Arc::new(move |mode| {
            tracing::info!(upstream = %name, ?mode,
                "the upstream's kill switch is for its own agents; this coordinator has its own \
                 (c2wall mode)");
        });
        Follower {
            source: c2wall_model::upstream_source(&u.name),
            synced: Synced::new(set, file, trust, status.clone(), apply, on_mode),
            status: status.clone(),
            upstream: u,
            wake: tokio::sync::Notify::new(),
            view: Mutex::new(Default::default()),
            touched: Mutex::new(Default::default()),
        }
    });
    let mut tasks = Vec::new();
    if let Some(every) = follower.upstream.share_sightings {
        let path = follower
            .upstream
            .sightings_key_file
            .clone()
            .unwrap_or_else(|| {
                dir.join(format!("upstream-{}.sightings.key", follower.upstream.name))
            });
        let key = c2wall_subscriber::load_or_create_key(&path).map_err(|e| {
            CoordError::Setting(format!(
                "[[upstream]] `{}`: sightings key: {e}",
                follower.upstream.name
            ))
        })?;
        tasks.push(tokio::spawn(sightings::run(
            follower.clone(),
            coord.clone(),
            endpoints[0].clone(),
            bearer.clone(),
            every,
            key,
        )));
    }
    let f = follower.clone();
    let client = SyncClient {
        replicas: follower
            .upstream
            .urls
            .iter()
            .cloned()
            .zip(endpoints)
            .collect(),
        agent_id: follower.upstream.id.clone(),
        labels: Default::default(),
        synced: follower.synced.clone(),
        report: Arc::new(move || f.report()),
        status,
        backoff: (Duration::from_millis(200), Duration::from_secs(30)),
        bearer,
    };
    tasks.push(tokio::spawn(client.run()));
    tasks.push(tokio::spawn(follower.clone().run(coord)));
    tracing::info!(upstream = %follower.upstream.name, urls = ?follower.upstream.urls,
        "following upstream coordinator");
    Ok((follower, tasks))
}
