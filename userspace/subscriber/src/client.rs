//! The stream client: connect, subscribe from the set's position, hand
//! each batch of messages to the set's owner ([`super::Synced`]), report
//! status; on any error back off and resubscribe. It never touches the
//! kernel's list on a failure: enforcement continues with the last set.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use c2wall_model::{wire::LATEST_VERSION_HEADER, Entry};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient};
use tonic::transport::{Channel, Endpoint};

use super::error::SyncError;
use super::follow::SyncedHandle;
use super::set::SetError;
use super::status::{unix_now, SyncStatus};
use super::value::SetValue;

/// Status is reported after every apply, and at least this often.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Messages read ahead of the set's owner: enough to keep the decoding
/// busy, few enough to bound what waits (a snapshot chunk is at most 1 MiB
/// on the wire, about 4 MiB decoded).
const READ_AHEAD: usize = 4;

/// The subscriber's current status, for periodic reports.
pub type StatusFn = Arc<dyn Fn() -> pb::AgentStatus + Send + Sync>;

pub struct SyncClient<V = Entry> {
    /// The coordinator's replicas (URL for logs and reports, and the endpoint
    /// with its TLS settings), tried in turn: one that is unreachable or
    /// drops the stream hands over to the next.
    pub replicas: Vec<(String, Endpoint)>,
    pub agent_id: String,
    /// Sent with each subscription: they pick the agent's rollout stage.
    pub labels: c2wall_model::Labels,
    pub synced: SyncedHandle<V>,
    pub report: StatusFn,
    pub status: Arc<SyncStatus>,
    /// Backoff bounds for reconnecting.
    pub backoff: (Duration, Duration),
    /// The bearer token, when the coordinator checks roles.
    pub bearer: c2wall_model::wire::Bearer,
}

impl<V: SetValue> SyncClient<V> {
    /// Runs until the task is dropped: subscribe, apply, and on any error
    /// move to the next replica and resubscribe from the set's version (at
    /// once while others are left to try; once every replica failed in a
    /// row, after a backoff, exponential with jitter).
    pub async fn run(self) {
        let mut delay = self.backoff.0;
        let mut want_snapshot = false;
        let n = self.replicas.len().max(1);
        let mut failed_in_row = 0;
        loop {
            let i = self.status.replica.load(Ordering::Relaxed) % n;
            let r = self.session(i, &mut want_snapshot).await;
            let moved = r.is_err() && n > 1;
            match r {
                Ok(()) => {
                    delay = self.backoff.0;
                    failed_in_row = 0;
                }
                Err(e) => {
                    failed_in_row += 1;
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
            if moved {
                let next = (i + 1) % n;
                self.status.replica.store(next, Ordering::Relaxed);
                self.status.failovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(from = %self.replicas[i].0, to = %self.replicas[next].0, "moving to another coordinator replica");
                if failed_in_row < n {
                    continue;
                }
                failed_in_row = 0;
            }
            let jitter = delay.mul_f64(0.5 * (unix_nanos_fraction()));
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(self.backoff.1);
        }
    }

    async fn connect(&self, i: usize) -> Result<Channel, SyncError> {
        Ok(self.replicas[i]
            .1
            .clone()
            .connect_timeout(Duration::from_secs(3))
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .connect()
            .await?)
    }

    /// Runs `f` on the set's owner off the async workers.
    async fn with_synced<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut super::Synced<V>) -> T + Send + 'static,
    ) -> T {
        let synced = self.synced.clone();
        match tokio::task::spawn_blocking(move || f(&mut synced.lock().expect("lock"))).await {
            Ok(t) => t,
            Err(_) => {
                // The set went down with the task. The pinned maps keep
                // enforcing; a restart (systemd) reloads the persisted set.
                tracing::error!("the apply task panicked; exiting");
                std::process::exit(70)
            }
        }
    }

    /// One subscription, until the stream ends or fails.
    async fn session(&self, i: usize, want_snapshot: &mut bool) -> Result<(), SyncError> {
        let url = &self.replicas[i].0;
        let channel = self.connect(i).await?;
        let mut client = AgentSyncClient::with_interceptor(channel, self.bearer.clone());
        let (version, digest, lineage) = self
            .with_synced(|s| {
                s.forget_parts();
                let set = s.set();
                (set.version, set.digest.to_bytes(), set.lineage.clone())
            })
            .await;
        let reply = client
            .subscribe(pb::SubscribeRequest {
                agent_id: self.agent_id.clone(),
                version,
                digest,
                snapshot: *want_snapshot,
                lineage,
                labels: self.labels.clone().into_iter().collect(),
                entries_only: V::ENTRIES_ONLY,
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
        tracing::info!(%url, version, "subscribed to the coordinator");
        // Messages are read and decoded by a task of their own while the
        // set's owner takes the ones before: a snapshot's next chunks are
        // decoded on one core while the entries of those before are decoded
        // and hashed on another. Dropped with the session (the JoinSet
        // aborts it).
        let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let mut reader = tokio::task::JoinSet::new();
        reader.spawn(async move {
            loop {
                let m = stream.message().await;
                let end = !matches!(m, Ok(Some(_)));
                if tx.send(m).await.is_err() || end {
                    return;
                }
            }
        });
        let mut last_report = std::time::Instant::now();
        // The stream's end or error, met while gathering a batch: taken
        // once the batch before it is applied.
        let mut ended = None;
        loop {
            let next = match ended.take() {
                Some(end) => end,
                None => rx.recv().await.unwrap_or(Ok(None)),
            };
            let Some(first) = next? else {
                return Ok(());
            };
            self.status
                .last_contact
                .store(unix_now(), Ordering::Relaxed);
            // Batch: take every message already waiting, apply once.
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(Ok(Some(m))) => batch.push(m),
                    Ok(end) => {
                        ended = Some(end);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let report = match self.with_synced(move |s| s.take_batch(batch)).await? {
                Some(report) => {
                    *want_snapshot = false;
                    Some(report)
                }
                // Keep `c2wall agents` fresh while nothing changes.
                None if last_report.elapsed() >= STATUS_EVERY => {
                    let report = self.report.clone();
                    Some(self.with_synced(move |s| s.stamp(report())).await)
                }
                None => None,
            };
            if let Some(mut report) = report {
                last_report = std::time::Instant::now();
                report.agent_id = self.agent_id.clone();
                report.coordinator = url.clone();
                report.failovers = self.status.failovers.load(Ordering::Relaxed);
                if let Err(e) = client.report_status(report).await {
                    tracing::warn!(error = %e, "reporting status");
                }
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
