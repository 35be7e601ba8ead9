//! The coordinator as blocklist source: subscribe, verify, apply, persist.
//!
//! Every snapshot and delta is checked against the digest the coordinator sent
//! before it is enforced (see [`crate::synced`]); a gap or a mismatch leaves
//! the set unchanged and asks for a snapshot. Deltas reach the kernel as the
//! entries they change, snapshots as a full reload. What was applied is
//! persisted so that an edge node that boots while the coordinator is
//! unreachable enforces it at once.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

pub use crate::sync_status::{unix_now, SyncStatus};
use c2wall_model::wire::LATEST_VERSION_HEADER;
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient, sync_message::Kind};
use tonic::transport::{Channel, Endpoint};

use crate::error::AgentError;
pub use crate::synced::{EntryChange, Pending, SetError, SyncedSet};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("coordinator: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the coordinator: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("applying: {0}")]
    Apply(#[from] AgentError),
    #[error("snapshot chunk {seq} of version {version} out of order")]
    Chunk { version: u64, seq: u32 },
}

impl SyncError {
    /// Errors after which only a snapshot can bring the set back in line.
    fn needs_snapshot(&self) -> bool {
        matches!(
            self,
            SyncError::Set(SetError::Gap { .. } | SetError::Digest { .. })
                | SyncError::Chunk { .. }
        )
    }
}

/// Snapshot chunks and delta parts received so far, until their last one.
#[derive(Default)]
struct Parts {
    chunks: Vec<pb::Entry>,
    chunk_version: Option<u64>,
    delta: Option<pb::Delta>,
}

/// Status is reported after every apply, and at least this often.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Enforces a verified set (blocking): the whole set after a snapshot, or,
/// after deltas, the set with the entries that changed since the last call.
/// Returns what to report.
pub type ApplyFn = Arc<
    dyn Fn(&SyncedSet, Option<&[EntryChange]>) -> Result<pb::AgentStatus, AgentError> + Send + Sync,
>;

/// The journal is folded into a fresh snapshot file once it is larger than
/// this many bytes per listed entry (and at least [`JOURNAL_MIN`]).
const JOURNAL_PER_ENTRY: usize = 64;
const JOURNAL_MIN: usize = 1 << 20;

/// The agent's current status, for periodic reports.
pub type StatusFn = Arc<dyn Fn() -> pb::AgentStatus + Send + Sync>;

/// The centre's kill switch: the mode to run in ("" = the agent's own).
pub type ModeFn = Arc<dyn Fn(&str) + Send + Sync>;

pub struct SyncClient {
    /// For logs.
    pub url: String,
    /// The coordinator, with its TLS settings.
    pub endpoint: Endpoint,
    pub agent_id: String,
    pub state_file: PathBuf,
    pub apply: ApplyFn,
    pub report: StatusFn,
    pub status: Arc<SyncStatus>,
    pub set: SyncedSet,
    /// Backoff bounds for reconnecting.
    pub backoff: (Duration, Duration),
    /// Bytes in the persisted journal (see [`SyncedSet::journal`]).
    pub journal_bytes: usize,
    /// Public keys whose signatures versions must carry (empty: unchecked).
    pub trust: c2wall_model::sign::Trust,
    pub on_mode: ModeFn,
    /// The bearer token, when the coordinator checks roles.
    pub bearer: c2wall_model::wire::Bearer,
}

impl SyncClient {
    /// Runs until the task is dropped: subscribe, apply, and on any error back
    /// off (exponential, with jitter) and resubscribe. Never touches the
    /// kernel's list on a failure: enforcement continues with the last set.
    pub async fn run(mut self) {
        let mut delay = self.backoff.0;
        let mut want_snapshot = false;
        loop {
            match self.session(&mut want_snapshot).await {
                Ok(()) => delay = self.backoff.0,
                Err(e) => {
                    record_failure(&self.status, &e);
                    if matches!(e, SyncError::Set(SetError::Signature { .. })) {
                        self.status
                            .signature_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "refused a version whose signature does not verify");
                    }
                    if e.needs_snapshot() {
                        want_snapshot = true;
                    }
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "coordinator sync");
                }
            }
            self.status.reconnects.fetch_add(1, Ordering::Relaxed);
            let jitter = delay.mul_f64(0.5 * (unix_nanos_fraction()));
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(self.backoff.1);
        }
    }

    async fn connect(&self) -> Result<Channel, SyncError> {
        Ok(self
            .endpoint
            .clone()
            .connect_timeout(Duration::from_secs(3))
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .connect()
            .await?)
    }

    /// One subscription, until the stream ends or fails.
    async fn session(&mut self, want_snapshot: &mut bool) -> Result<(), SyncError> {
        let channel = self.connect().await?;
        let mut client = AgentSyncClient::with_interceptor(channel, self.bearer.clone());
        let reply = client
            .subscribe(pb::SubscribeRequest {
                agent_id: self.agent_id.clone(),
                version: self.set.version,
                digest: self.set.digest.to_bytes(),
                snapshot: *want_snapshot,
                lineage: self.set.lineage.clone(),
            })
            .await?;
        if let Some(v) = reply
            .metadata()
            .get(LATEST_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.status.saw_latest(v);
        }
        let mut stream = reply.into_inner();
        tracing::info!(url = %self.url, version = self.set.version, "subscribed to the coordinator");
        let mut parts = Parts::default();
        let mut last_report = std::time::Instant::now();
        loop {
            let Some(first) = stream.message().await? else {
                return Ok(());
            };
            self.status
                .last_contact
                .store(unix_now(), Ordering::Relaxed);
            // Batch: take every message already waiting, apply once.
            let mut batch = vec![first];
            while let Ok(Ok(Some(m))) =
                tokio::time::timeout(Duration::from_millis(0), stream.message()).await
            {
                batch.push(m);
                if batch.len() >= 256 {
                    break;
                }
            }
            let mut fresh: Option<SyncedSet> = None;
            let mut pending = Pending::default();
            for m in batch {
                let step = self.take(m, &mut parts, &mut fresh, &mut pending);
                if let Err(e) = step {
                    self.set.rollback(pending);
                    return Err(e);
                }
            }
            if fresh.is_none() && pending.is_empty() && last_report.elapsed() >= STATUS_EVERY {
                // Keep `c2wall agents` fresh while nothing changes.
                last_report = std::time::Instant::now();
                let report = self.report.clone();
                let mut status = tokio::task::spawn_blocking(move || report())
                    .await
                    .unwrap_or_default();
                status.agent_id = self.agent_id.clone();
                status.applied_version = self.set.version;
                status.digest = self.set.digest.to_bytes();
                status.lineage = self.set.lineage.clone();
                if let Err(e) = client.report_status(status).await {
                    tracing::warn!(error = %e, "reporting status");
                }
            }
            let report = if let Some(set) = fresh {
                self.set.rollback(pending);
                let (set, report) = self.enforce(set, None).await;
                let report = report?;
                self.set = set;
                self.persist(None);
                Some(report)
            } else if !pending.is_empty() {
                let changes = self.set.changes(&pending);
                let set = std::mem::take(&mut self.set);
                let (set, report) = self.enforce(set, Some(changes)).await;
                self.set = set;
                let report = match report {
                    Ok(r) => r,
                    Err(e) => {
                        self.set.rollback(pending);
                        return Err(e);
                    }
                };
                self.persist(Some(&pending));
                Some(report)
            } else {
                None
            };
            if let Some(mut report) = report {
                last_report = std::time::Instant::now();
                *want_snapshot = false;
                self.status.applied(self.set.version);
                report.agent_id = self.agent_id.clone();
                report.applied_version = self.set.version;
                report.digest = self.set.digest.to_bytes();
                report.lineage = self.set.lineage.clone();
                if let Err(e) = client.report_status(report).await {
                    tracing::warn!(error = %e, "reporting status");
                }
            }
        }
    }

    /// Takes one message: deltas go into the set in place (verified, undo in
    /// `pending`), or into `fresh` if a snapshot arrived earlier in the batch.
    /// Snapshot chunks and delta parts are gathered until their last one.
    fn take(
        &mut self,
        m: pb::SyncMessage,
        parts: &mut Parts,
        fresh: &mut Option<SyncedSet>,
        pending: &mut Pending,
    ) -> Result<(), SyncError> {
        match m.kind {
            Some(Kind::Heartbeat(h)) => self.status.saw_latest(h.latest_version),
            Some(Kind::Control(c)) => (self.on_mode)(&c.mode),
            Some(Kind::Snapshot(c)) => {
                if parts.chunk_version.is_some_and(|v| v != c.version)
                    || (parts.chunk_version.is_none() && c.seq != 0)
                {
                    return Err(SyncError::Chunk {
                        version: c.version,
                        seq: c.seq,
                    });
                }
                parts.chunk_version = Some(c.version);
                parts.chunks.extend(c.entries);
                if c.last {
                    let next = SyncedSet::from_snapshot(
                        &c.lineage,
                        c.version,
                        &c.digest,
                        &parts.chunks,
                        &c.signature,
                        &self.trust,
                    )?;
                    // Never backwards, never to another lineage unasked.
                    self.set.may_follow(&next, c.moved.as_ref(), &self.trust)?;
                    *fresh = Some(next);
                    parts.chunks = Vec::new();
                    parts.chunk_version = None;
                    self.status.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Kind::Delta(d)) => {
                let d = match parts.delta.take() {
                    None => d,
                    Some(mut acc) => {
                        if acc.version != d.version {
                            return Err(SyncError::Chunk {
                                version: d.version,
                                seq: 0,
                            });
                        }
                        acc.upserts.extend(d.upserts);
                        acc.removals.extend(d.removals);
                        acc.more = d.more;
                        acc
                    }
                };
                if d.more {
                    parts.delta = Some(d);
                    return Ok(());
                }
                match fresh {
                    Some(f) => f.apply_delta(&d, &mut Pending::default(), &self.trust)?,
                    None => self.set.apply_delta(&d, pending, &self.trust)?,
                }
                self.status.deltas.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        Ok(())
    }

    /// Runs the apply function off the async workers; hands the set back.
    async fn enforce(
        &self,
        set: SyncedSet,
        changes: Option<Vec<EntryChange>>,
    ) -> (SyncedSet, Result<pb::AgentStatus, SyncError>) {
        let apply = self.apply.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let r = apply(&set, changes.as_deref());
            let _ = tx.send((set, r));
        });
        match rx.await {
            Ok((set, r)) => (set, r.map_err(SyncError::from)),
            Err(_) => {
                // The set went down with the task. The pinned maps keep
                // enforcing; a restart (systemd) reloads the persisted set.
                tracing::error!("the apply task panicked; exiting");
                std::process::exit(70)
            }
        }
    }

    /// Saves what the kernel now enforces: the deltas just applied go to
    /// the journal (`pending`), a snapshot (None) or a large journal to a
    /// fresh snapshot file. The kernel is the truth: when saving fails the
    /// list stays enforced, the saved one is marked stale (metric, alert),
    /// and the next change retries with a full save (a journal with a gap
    /// would be useless). A restart never re-applies the stale list over
    /// the kernel's newer one (see the daemon's adoption).
    fn persist(&mut self, pending: Option<&Pending>) {
        let stale = self.status.disk_stale.load(Ordering::Relaxed);
        let limit = (self.set.entries.len() * JOURNAL_PER_ENTRY).max(JOURNAL_MIN);
        let saved = match pending {
            Some(p) if !stale => SyncedSet::journal(&self.state_file, p).and_then(|n| {
                self.journal_bytes += n;
                if self.journal_bytes > limit {
                    self.set.save(&self.state_file)?;
                    self.journal_bytes = 0;
                }
                Ok(())
            }),
            _ => self
                .set
                .save(&self.state_file)
                .map(|()| self.journal_bytes = 0),
        };
        match saved {
            Ok(()) => {
                if stale {
                    tracing::info!(
                        version = self.set.version,
                        "the saved list is current again"
                    );
                }
                self.status.disk_stale.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.status.disk_stale.store(true, Ordering::Relaxed);
                self.status.persist_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(version = self.set.version, error = %e,
                    "the kernel enforces this version but saving it failed: the saved list is \
                     stale until a save succeeds (retried at the next change)");
            }
        }
    }
}

fn unix_nanos_fraction() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    n as f64 / 1e9
}

/// Counts a failed session in `status`: the error, refused versions by
/// reason, and what to show (`c2wall agents`, /readyz).
fn record_failure(status: &SyncStatus, e: &SyncError) {
    status.errors.fetch_add(1, Ordering::Relaxed);
    if let SyncError::Set(s) = e {
        *status
            .refused
            .lock()
            .expect("lock")
            .entry(s.kind())
            .or_default() += 1;
    }
    *status.last_error.lock().expect("lock") = c2wall_model::limits::quote(&e.to_string(), 400);
}
