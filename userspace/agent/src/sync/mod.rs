//! The agent's half of the sync protocol, in one place: the stream client
//! (`client`: connect, subscribe, back off, report), the one owner of the
//! synced set (`follow`: verify, enforce, persist), the set itself and its
//! files (`set`), and what the agent knows of its sync (`status`).
//!
//! Every snapshot and delta is checked against the digest (and signature and
//! lineage) the coordinator sent before it is enforced; a gap or a mismatch
//! leaves the set unchanged and asks for a snapshot. What was applied is
//! persisted so that an edge node that boots while the coordinator is
//! unreachable enforces it at once.

mod client;
mod error;
mod follow;
pub mod set;
mod status;

pub use client::{StatusFn, SyncClient};
pub use error::SyncError;
pub use follow::{ApplyFn, ModeFn, Synced, SyncedHandle};
pub use set::{journal_len, journal_path, EntryChange, Pending, SetError, SyncedSet};
pub use status::{unix_now, SyncStatus};
