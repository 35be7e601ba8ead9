//! What the sync client tells the rest of the agent (metrics, /readyz,
//! status reports): versions, contact, errors, refusals, the saved list's
//! health.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Mutex,
    },
};

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
    /// Snapshots and deltas refused for a missing or untrusted signature.
    pub signature_failures: AtomicU64,
    /// Unix seconds since which the applied version has been behind the
    /// coordinator's (0: not behind).
    pub behind_since: AtomicI64,
    /// Versions refused, by reason (see [`SetError::kind`]).
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Why the last session failed (empty once a version applies).
    pub last_error: Mutex<String>,
    /// The saved list lags the kernel's: persisting failed (the next change
    /// retries with a full save).
    pub disk_stale: AtomicBool,
    pub persist_failures: AtomicU64,
    /// Which of the configured coordinator replicas is in use (its index),
    /// and how often the agent moved to another one.
    pub replica: std::sync::atomic::AtomicUsize,
    pub failovers: AtomicU64,
}

impl SyncStatus {
    /// The coordinator's latest version, as a heartbeat or the subscribe
    /// reply says, whether or not the agent can apply it.
    pub fn saw_latest(&self, v: u64) {
        self.latest_version.store(v, Ordering::Relaxed);
        self.update_behind();
    }

    /// A version was applied (and enforced).
    pub fn applied(&self, v: u64) {
        self.applied_version.store(v, Ordering::Relaxed);
        let latest = self.latest_version.load(Ordering::Relaxed).max(v);
        self.latest_version.store(latest, Ordering::Relaxed);
        self.update_behind();
        if v >= latest {
            self.last_error.lock().expect("lock").clear();
        }
    }

    fn update_behind(&self) {
        let (a, l) = (
            self.applied_version.load(Ordering::Relaxed),
            self.latest_version.load(Ordering::Relaxed),
        );
        if a >= l {
            self.behind_since.store(0, Ordering::Relaxed);
        } else if self.behind_since.load(Ordering::Relaxed) == 0 {
            self.behind_since.store(unix_now(), Ordering::Relaxed);
        }
    }

    /// Seconds the agent has been behind the coordinator (0: in sync).
    pub fn behind_seconds(&self, now: i64) -> u64 {
        match self.behind_since.load(Ordering::Relaxed) {
            0 => 0,
            t => now.saturating_sub(t).max(0) as u64,
        }
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
