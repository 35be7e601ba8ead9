//! The agent's use of the sync protocol. The client itself (subscribe,
//! verify, persist, report) is shared by every subscriber and lives in
//! `c2wall-subscriber`; the agent keeps each entry alone (no provenance:
//! memory at a million entries), and adds what only an agent has: pinned
//! kernel maps that may hold a newer list than the saved one.

use c2wall_model::Entry;
pub use c2wall_subscriber::{
    journal_len, journal_path, unix_now, ApplyError, FileError, ModeFn, SetError, StatusFn,
    SyncError, SyncStatus,
};

pub type SyncedSet = c2wall_subscriber::SyncedSet<Entry>;
pub type Synced = c2wall_subscriber::Synced<Entry>;
pub type SyncedHandle = c2wall_subscriber::SyncedHandle<Entry>;
pub type SyncClient = c2wall_subscriber::SyncClient<Entry>;
pub type ApplyFn = c2wall_subscriber::ApplyFn<Entry>;
pub type EntryChange = c2wall_subscriber::EntryChange<Entry>;
pub type Pending = c2wall_subscriber::Pending<Entry>;

/// Whether the pinned maps hold a coordinator version other than the
/// saved set's (`kernel_version` 0: they hold none, e.g. after a reboot).
/// The saved set is written after the kernel, so a difference means saving
/// failed (disk full, read-only) and the kernel's list is newer.
pub fn behind_kernel(saved: &SyncedSet, kernel_version: u64, kernel_lineage: &[u8; 16]) -> bool {
    kernel_version != 0
        && (kernel_version, *kernel_lineage)
            != (saved.version, crate::apply::lineage16(&saved.lineage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::sign::Trust;

    #[test]
    fn a_saved_list_behind_the_kernels_record_gives_way_to_it() {
        let l = [0xaa; 16];
        let saved = SyncedSet {
            lineage: l.to_vec(),
            version: 10,
            ..Default::default()
        };
        assert!(!behind_kernel(&saved, 0, &[0; 16]), "empty maps (a reboot)");
        assert!(!behind_kernel(&saved, 10, &l), "in step");
        assert!(
            behind_kernel(&saved, 40, &l),
            "saving failed after version 10"
        );
        assert!(behind_kernel(&saved, 10, &[0xbb; 16]), "another lineage");
        let p = SyncedSet::placeholder(40, &l);
        assert_eq!(
            (p.version, p.lineage.as_slice(), p.entries.len()),
            (40, &l[..], 0)
        );
        // Nothing older than the kernel's version is accepted after it.
        assert!(matches!(
            p.may_follow(&saved, None, &Trust::default()),
            Err(SetError::Older { have: 40, got: 10 })
        ));
        assert!(SyncedSet::placeholder(40, &[0; 16]).lineage.is_empty());
    }
}
