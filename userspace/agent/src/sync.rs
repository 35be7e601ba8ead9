//! The coordinator as blocklist source: subscribe, verify, apply, persist.
//!
//! The agent keeps the coordinator's effective set with its version and digest.
//! Every snapshot and delta is checked against the digest the coordinator sent
//! before it is applied; a gap or a mismatch leaves the set unchanged and asks
//! for a snapshot. The last applied set is persisted (write, fsync, rename) so
//! that an edge node that boots while the coordinator is unreachable enforces it
//! at once.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use c2wall_model::{
    wire::{entry_to_wire, identity_from_wire},
    Entry, Identity, Record, SetDigest,
};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient, sync_message::Kind};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::error::AgentError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("delta {got} follows version {expected_prev}, but we have version {have}")]
    Gap {
        have: u64,
        got: u64,
        expected_prev: u64,
    },
    #[error(
        "version {version}: digest mismatch after applying (ours {ours}, coordinator's {theirs})"
    )]
    Digest {
        version: u64,
        ours: String,
        theirs: String,
    },
    #[error("invalid entry from the coordinator: {0}")]
    Invalid(#[from] c2wall_model::wire::WireError),
    #[error("coordinator: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the coordinator: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("applying: {0}")]
    Apply(#[from] AgentError),
    #[error("snapshot chunk {seq} of version {version} out of order")]
    Chunk { version: u64, seq: u32 },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncedSet {
    pub version: u64,
    pub digest: SetDigest,
    pub entries: BTreeMap<Identity, Entry>,
}

fn entry_of(e: &pb::Entry) -> Result<Entry, SyncError> {
    Ok(Record::try_from(e)?.entry)
}

fn check_digest(version: u64, ours: SetDigest, theirs: &[u8]) -> Result<(), SyncError> {
    if ours.to_bytes() != theirs {
        return Err(SyncError::Digest {
            version,
            ours: ours.to_string(),
            theirs: SetDigest::from_bytes(theirs)
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("{} bytes", theirs.len())),
        });
    }
    Ok(())
}

impl SyncedSet {
    /// A complete snapshot, verified against its digest.
    pub fn from_snapshot(
        version: u64,
        digest: &[u8],
        entries: &[pb::Entry],
    ) -> Result<Self, SyncError> {
        let mut map = BTreeMap::new();
        for e in entries {
            let e = entry_of(e)?;
            map.insert(e.identity(), e);
        }
        let ours = SetDigest::of(map.values());
        check_digest(version, ours, digest)?;
        Ok(SyncedSet {
            version,
            digest: ours,
            entries: map,
        })
    }

    /// The set after `d`, verified; `self` is unchanged on error.
    pub fn after(&self, d: &pb::Delta) -> Result<Self, SyncError> {
        if d.previous_version != self.version {
            return Err(SyncError::Gap {
                have: self.version,
                got: d.version,
                expected_prev: d.previous_version,
            });
        }
        let mut next = self.clone();
        for k in &d.removals {
            let id = identity_from_wire(k)?;
            if let Some(old) = next.entries.remove(&id) {
                next.digest.remove(&old);
            }
        }
        for e in &d.upserts {
            let e = entry_of(e)?;
            if let Some(old) = next.entries.insert(e.identity(), e) {
                next.digest.remove(&old);
            }
            next.digest.add(&e);
        }
        next.version = d.version;
        check_digest(d.version, next.digest, &d.digest)?;
        Ok(next)
    }

    /// Loads the persisted set; a missing file is `None`, a damaged one an error.
    pub fn load(path: &Path) -> Result<Option<Self>, AgentError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AgentError::ReadFile {
                    path: path.into(),
                    source,
                })
            }
        };
        let bad = |m: String| AgentError::Config {
            path: path.into(),
            message: format!(
                "damaged persisted blocklist ({m}); delete it to start from a snapshot"
            ),
        };
        let s = pb::SnapshotChunk::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        SyncedSet::from_snapshot(s.version, &s.digest, &s.entries)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// Persists atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let msg = pb::SnapshotChunk {
            version: self.version,
            digest: self.digest.to_bytes(),
            seq: 0,
            last: true,
            entries: self.entries.values().map(entry_to_wire).collect(),
        };
        crate::ids::write_atomic(path, &msg.encode_to_vec())
    }
}

/// Status is reported after every apply, and at least this often.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Shared counters the daemon exports.
#[derive(Default)]
pub struct SyncStatus {
    pub applied_version: AtomicU64,
    pub latest_version: AtomicU64,
    /// Unix seconds of the last message from the coordinator (0 = never).
    pub last_contact: AtomicI64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    pub snapshots: AtomicU64,
    pub deltas: AtomicU64,
}

/// Applies a verified set to the kernel (blocking); returns what to report.
pub type ApplyFn = Arc<dyn Fn(&SyncedSet) -> Result<pb::AgentStatus, AgentError> + Send + Sync>;

/// The agent's current status, for periodic reports.
pub type StatusFn = Arc<dyn Fn() -> pb::AgentStatus + Send + Sync>;

pub struct SyncClient {
    pub url: String,
    pub agent_id: String,
    pub state_file: PathBuf,
    pub apply: ApplyFn,
    pub report: StatusFn,
    pub status: Arc<SyncStatus>,
    pub set: SyncedSet,
    /// Backoff bounds for reconnecting.
    pub backoff: (Duration, Duration),
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
                    self.status.errors.fetch_add(1, Ordering::Relaxed);
                    if matches!(
                        e,
                        SyncError::Gap { .. } | SyncError::Digest { .. } | SyncError::Chunk { .. }
                    ) {
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
        Ok(Endpoint::from_shared(self.url.clone())
            .map_err(|e| SyncError::Rpc(tonic::Status::invalid_argument(e.to_string())))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .connect()
            .await?)
    }

    /// One subscription, until the stream ends or fails.
    async fn session(&mut self, want_snapshot: &mut bool) -> Result<(), SyncError> {
        let channel = self.connect().await?;
        let mut client = AgentSyncClient::new(channel);
        let mut stream = client
            .subscribe(pb::SubscribeRequest {
                agent_id: self.agent_id.clone(),
                version: self.set.version,
                digest: self.set.digest.to_bytes(),
                snapshot: *want_snapshot,
            })
            .await?
            .into_inner();
        tracing::info!(url = %self.url, version = self.set.version, "subscribed to the coordinator");
        let mut chunks: Vec<pb::Entry> = Vec::new();
        let mut chunk_version = None;
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
            let mut next: Option<SyncedSet> = None;
            for m in batch {
                match m.kind {
                    Some(Kind::Heartbeat(h)) => {
                        self.status
                            .latest_version
                            .store(h.latest_version, Ordering::Relaxed);
                    }
                    Some(Kind::Snapshot(c)) => {
                        if chunk_version.is_some_and(|v| v != c.version)
                            || (chunk_version.is_none() && c.seq != 0)
                        {
                            return Err(SyncError::Chunk {
                                version: c.version,
                                seq: c.seq,
                            });
                        }
                        chunk_version = Some(c.version);
                        chunks.extend(c.entries);
                        if c.last {
                            next = Some(SyncedSet::from_snapshot(c.version, &c.digest, &chunks)?);
                            chunks.clear();
                            chunk_version = None;
                            self.status.snapshots.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Kind::Delta(d)) => {
                        let base = next.as_ref().unwrap_or(&self.set);
                        next = Some(base.after(&d)?);
                        self.status.deltas.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
            if next.is_none() && last_report.elapsed() >= STATUS_EVERY {
                // Keep `c2wall agents` fresh while nothing changes.
                last_report = std::time::Instant::now();
                let report = self.report.clone();
                let mut status = tokio::task::spawn_blocking(move || report())
                    .await
                    .unwrap_or_default();
                status.agent_id = self.agent_id.clone();
                status.applied_version = self.set.version;
                status.digest = self.set.digest.to_bytes();
                if let Err(e) = client.report_status(status).await {
                    tracing::warn!(error = %e, "reporting status");
                }
            }
            if let Some(set) = next {
                last_report = std::time::Instant::now();
                let apply = self.apply.clone();
                let s = set.clone();
                let report = tokio::task::spawn_blocking(move || apply(&s))
                    .await
                    .map_err(|e| SyncError::Rpc(tonic::Status::internal(e.to_string())))??;
                set.save(&self.state_file)?;
                self.set = set;
                *want_snapshot = false;
                self.status
                    .applied_version
                    .store(self.set.version, Ordering::Relaxed);
                let latest = self
                    .status
                    .latest_version
                    .load(Ordering::Relaxed)
                    .max(self.set.version);
                self.status.latest_version.store(latest, Ordering::Relaxed);
                let mut report = report;
                report.agent_id = self.agent_id.clone();
                report.applied_version = self.set.version;
                report.digest = self.set.digest.to_bytes();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn e(prefix: &str) -> pb::Entry {
        pb::Entry {
            key: Some(pb::EntryKey {
                prefix: prefix.into(),
                ..Default::default()
            }),
            action: pb::Action::Drop as i32,
            direction: pb::Direction::Both as i32,
            ..Default::default()
        }
    }

    fn digest_of(prefixes: &[&str]) -> Vec<u8> {
        let es: Vec<Entry> = prefixes.iter().map(|p| entry_of(&e(p)).unwrap()).collect();
        SetDigest::of(&es).to_bytes()
    }

    #[test]
    fn snapshots_and_deltas_are_verified_and_a_bad_one_changes_nothing() {
        let snap = [e("192.0.2.1"), e("192.0.2.2")];
        let bad = SyncedSet::from_snapshot(3, &digest_of(&["192.0.2.1"]), &snap);
        assert!(matches!(bad, Err(SyncError::Digest { version: 3, .. })));
        let set =
            SyncedSet::from_snapshot(3, &digest_of(&["192.0.2.1", "192.0.2.2"]), &snap).unwrap();

        let delta = |prev, v, digest: Vec<u8>| pb::Delta {
            previous_version: prev,
            version: v,
            digest,
            upserts: vec![e("192.0.2.3")],
            removals: vec![pb::EntryKey {
                prefix: "192.0.2.1/32".into(),
                ..Default::default()
            }],
        };
        let good = digest_of(&["192.0.2.2", "192.0.2.3"]);
        // A tampered delta (digest of another set) is refused.
        let tampered = set.after(&delta(3, 4, digest_of(&["192.0.2.2", "192.0.2.9"])));
        assert!(matches!(
            tampered,
            Err(SyncError::Digest { version: 4, .. })
        ));
        // A gap is refused.
        assert!(matches!(
            set.after(&delta(2, 4, good.clone())),
            Err(SyncError::Gap { have: 3, .. })
        ));
        assert_eq!(set.version, 3, "unchanged by refused deltas");
        let next = set.after(&delta(3, 4, good)).unwrap();
        assert_eq!(next.version, 4);
        let keys: Vec<String> = next.entries.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["192.0.2.2/32", "192.0.2.3/32"]);
    }

    #[test]
    fn the_persisted_set_round_trips_and_damage_is_reported() {
        let dir = std::env::temp_dir().join(format!("c2wall-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("set.pb");
        assert_eq!(SyncedSet::load(&path).unwrap(), None);
        let set =
            SyncedSet::from_snapshot(7, &digest_of(&["2001:db8::/32"]), &[e("2001:db8::/32")])
                .unwrap();
        set.save(&path).unwrap();
        assert_eq!(SyncedSet::load(&path).unwrap(), Some(set));
        std::fs::write(&path, b"\x0a\xff garbage").unwrap();
        let err = SyncedSet::load(&path).unwrap_err().to_string();
        assert!(err.contains("damaged persisted blocklist"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
