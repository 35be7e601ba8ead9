//! Who changes the list and when: the audit log's actor and peer, and the
//! clock every change is stamped with. A leaf: every module may use it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::AuditEvent;

/// Who asks for a change and from where, for the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub actor: String,
    /// The caller's address; empty for the coordinator's own workers.
    pub peer: String,
}

impl Origin {
    pub fn new(actor: impl Into<String>, peer: impl Into<String>) -> Self {
        Origin {
            actor: actor.into(),
            peer: peer.into(),
        }
    }
    /// The coordinator's own workers (expiry, feeds).
    pub fn internal(actor: impl Into<String>) -> Self {
        Self::new(actor, "")
    }
    pub fn audit(&self, at: i64, action: &str, detail: &str, reason: &str) -> AuditEvent {
        AuditEvent {
            seq: 0,
            at,
            actor: self.actor.clone(),
            peer: self.peer.clone(),
            action: action.into(),
            detail: detail.into(),
            reason: reason.into(),
        }
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
