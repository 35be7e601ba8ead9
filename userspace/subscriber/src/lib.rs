//! The subscriber's half of the sync protocol, in one place for every kind
//! of subscriber (the edge agent, a downstream coordinator, an exporter):
//! the stream client (`client`: connect, subscribe, back off, report), the
//! one owner of the synced set (`follow`: verify, enforce, persist), the set
//! itself and its files (`set`), and what the subscriber knows of its sync
//! (`status`).
//!
//! Every snapshot and delta is checked against the digest (and signature and
//! lineage) the coordinator sent before it is enforced; a gap or a mismatch
//! leaves the set unchanged and asks for a snapshot. What was applied is
//! persisted so that a subscriber that starts while its coordinator is
//! unreachable enforces it at once. What a subscriber keeps of each entry
//! (the entry alone, or the whole record with its provenance) is its
//! [`SetValue`].

mod client;
mod error;
mod follow;
mod fsio;
pub use fsio::{append_synced, load_or_create_key, stage, write_atomic, Staged};
pub mod set;
mod status;
mod value;

pub use client::{StatusFn, SyncClient};
pub use error::{ApplyError, FileError, SyncError};
pub use follow::{ApplyFn, ModeFn, Synced, SyncedHandle};
pub use set::{journal_len, journal_path, EntryChange, Pending, SetError, SyncedSet};
pub use status::{unix_now, SyncStatus};
pub use value::SetValue;
