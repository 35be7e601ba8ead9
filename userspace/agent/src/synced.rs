//! The coordinator's set as the agent holds it: entries, version, digest.
//!
//! Deltas are applied in place and verified against the coordinator's digest;
//! a delta that does not verify is undone, so the set is always one the
//! coordinator published. On disk the set is a snapshot file plus a journal of
//! the deltas applied since (appended with one fsync per batch), rewritten as
//! one snapshot once the journal outgrows it: persisting a delta costs the
//! delta, not the list.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use c2wall_model::{
    sign::Trust,
    wire::{entry_to_wire, identity_from_wire, WireError},
    Entry, Identity, Record, SetDigest,
};
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::error::AgentError;

#[derive(Debug, thiserror::Error)]
pub enum SetError {
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
    Invalid(#[from] WireError),
    #[error(
        "version {version}: the signature is missing or not by a trusted key; refused \
         (the previous list stays enforced)"
    )]
    Signature { version: u64 },
    #[error(
        "version {got} is older than version {have} already applied; refused (the list of \
         version {have} stays enforced: was the coordinator's store restored or replaced?)"
    )]
    Older { have: u64, got: u64 },
    #[error(
        "version {got} is of lineage {theirs}, not of our lineage {ours}, and carries no \
         signed move from ours; refused (the list of version {have} stays enforced)"
    )]
    Lineage {
        have: u64,
        got: u64,
        ours: String,
        theirs: String,
    },
}

impl SetError {
    /// A short, fixed name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SetError::Gap { .. } => "gap",
            SetError::Digest { .. } => "digest",
            SetError::Invalid(_) => "invalid",
            SetError::Signature { .. } => "signature",
            SetError::Older { .. } => "older",
            SetError::Lineage { .. } => "lineage",
        }
    }
}

fn check_signature(
    trust: &Trust,
    lineage: &[u8],
    version: u64,
    digest: &SetDigest,
    signature: &[u8],
) -> Result<(), SetError> {
    if trust.is_empty() || trust.verify(lineage, version, &digest.to_bytes(), signature) {
        Ok(())
    } else {
        Err(SetError::Signature { version })
    }
}

/// One entry's new value (None = withdrawn).
pub type EntryChange = (Identity, Option<Entry>);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncedSet {
    /// The coordinator store's lineage (empty: none yet, or a set saved
    /// before lineages).
    pub lineage: Vec<u8>,
    pub version: u64,
    pub digest: SetDigest,
    pub entries: BTreeMap<Identity, Entry>,
}

/// Deltas applied to a set but not yet enforced: what to undo if enforcing
/// fails, and what to journal if it succeeds.
#[derive(Default)]
pub struct Pending {
    base: Option<(u64, SetDigest)>,
    undo: Vec<EntryChange>,
    touched: BTreeSet<Identity>,
    journal: Vec<u8>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.base.is_none()
    }
}

fn entry_of(e: &pb::Entry) -> Result<Entry, SetError> {
    Ok(Record::try_from(e)?.entry)
}

fn check_digest(version: u64, ours: SetDigest, theirs: &[u8]) -> Result<(), SetError> {
    if ours.to_bytes() != theirs {
        return Err(SetError::Digest {
            version,
            ours: ours.to_string(),
            theirs: SetDigest::from_bytes(theirs)
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("{} bytes", theirs.len())),
        });
    }
    Ok(())
}

/// The journal next to a snapshot file.
pub fn journal_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".journal");
    p.into()
}

/// The previous generation of a snapshot file.
pub fn prev_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".prev");
    p.into()
}

/// Bytes in the journal of `snapshot` (0 if there is none).
pub fn journal_len(snapshot: &Path) -> usize {
    std::fs::metadata(journal_path(snapshot))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

impl SyncedSet {
    /// A complete snapshot, verified against its digest (and signature, when
    /// keys are trusted).
    pub fn from_snapshot(
        lineage: &[u8],
        version: u64,
        digest: &[u8],
        entries: &[pb::Entry],
        signature: &[u8],
        trust: &Trust,
    ) -> Result<Self, SetError> {
        let mut map = BTreeMap::new();
        for e in entries {
            let e = entry_of(e)?;
            map.insert(e.identity(), e);
        }
        let ours = SetDigest::of(map.values());
        check_digest(version, ours, digest)?;
        check_signature(trust, lineage, version, &ours, signature)?;
        Ok(SyncedSet {
            lineage: lineage.to_vec(),
            version,
            digest: ours,
            entries: map,
        })
    }

    /// Whether a verified snapshot `next` may replace this set: never an
    /// older version, never another lineage, unless the snapshot carries a
    /// move from our lineage (up to at least our version) signed by a trusted
    /// key (any move, when no key is trusted). A set with nothing applied
    /// takes anything.
    pub fn may_follow(
        &self,
        next: &SyncedSet,
        moved: Option<&pb::LineageMove>,
        trust: &Trust,
    ) -> Result<(), SetError> {
        if self.version == 0 {
            return Ok(());
        }
        if self.lineage.is_empty() || next.lineage == self.lineage {
            return match next.version < self.version {
                true => Err(SetError::Older {
                    have: self.version,
                    got: next.version,
                }),
                false => Ok(()),
            };
        }
        let moved_here = moved.is_some_and(|m| {
            m.from_lineage == self.lineage
                && m.to_lineage == next.lineage
                && m.from_version >= self.version
                && (trust.is_empty()
                    || trust.verify_move(
                        &m.from_lineage,
                        m.from_version,
                        &m.to_lineage,
                        &m.signature,
                    ))
        });
        if moved_here {
            return Ok(());
        }
        Err(SetError::Lineage {
            have: self.version,
            got: next.version,
            ours: c2wall_model::sign::hex(&self.lineage),
            theirs: c2wall_model::sign::hex(&next.lineage),
        })
    }

    /// Applies `d` in place if it follows our version and the result verifies;
    /// otherwise the set is left as it was. `p` collects what to undo.
    pub fn apply_delta(
        &mut self,
        d: &pb::Delta,
        p: &mut Pending,
        trust: &Trust,
    ) -> Result<(), SetError> {
        if !self.lineage.is_empty() && d.lineage != self.lineage {
            return Err(SetError::Lineage {
                have: self.version,
                got: d.version,
                ours: c2wall_model::sign::hex(&self.lineage),
                theirs: c2wall_model::sign::hex(&d.lineage),
            });
        }
        if d.previous_version != self.version {
            return Err(SetError::Gap {
                have: self.version,
                got: d.version,
                expected_prev: d.previous_version,
            });
        }
        // Parse everything first: an invalid entry changes nothing.
        let removals = d
            .removals
            .iter()
            .map(identity_from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        let upserts = d
            .upserts
            .iter()
            .map(entry_of)
            .collect::<Result<Vec<_>, _>>()?;
        let (version, digest, mark) = (self.version, self.digest, p.undo.len());
        for id in removals {
            let old = self.entries.remove(&id);
            if let Some(old) = &old {
                self.digest.remove(old);
            }
            p.undo.push((id, old));
            p.touched.insert(id);
        }
        for e in upserts {
            let id = e.identity();
            let old = self.entries.insert(id, e);
            if let Some(old) = &old {
                self.digest.remove(old);
            }
            self.digest.add(&e);
            p.undo.push((id, old));
            p.touched.insert(id);
        }
        let verified = check_digest(d.version, self.digest, &d.digest).and_then(|()| {
            check_signature(trust, &d.lineage, d.version, &self.digest, &d.signature)
        });
        if let Err(e) = verified {
            self.undo_to(p, mark);
            (self.version, self.digest) = (version, digest);
            return Err(e);
        }
        p.base.get_or_insert((version, digest));
        self.version = d.version;
        // A set saved before lineages takes the first one that verifies.
        if self.lineage.is_empty() {
            self.lineage = d.lineage.clone();
        }
        d.encode_length_delimited(&mut p.journal)
            .expect("a Vec grows as needed");
        Ok(())
    }

    fn undo_to(&mut self, p: &mut Pending, mark: usize) {
        for (id, old) in p.undo.drain(mark..).rev() {
            match old {
                Some(e) => self.entries.insert(id, e),
                None => self.entries.remove(&id),
            };
        }
    }

    /// Undoes every delta collected in `p`.
    pub fn rollback(&mut self, mut p: Pending) {
        self.undo_to(&mut p, 0);
        if let Some((v, d)) = p.base {
            (self.version, self.digest) = (v, d);
        }
    }

    /// The net change `p` made: each touched entry's current value.
    pub fn changes(&self, p: &Pending) -> Vec<EntryChange> {
        p.touched
            .iter()
            .map(|id| (*id, self.entries.get(id).copied()))
            .collect()
    }

    /// Loads the persisted set: the snapshot file and its journal, or, when
    /// the snapshot file is damaged, the previous generation (kept by
    /// [`SyncedSet::save`]); a damaged file is set aside as `.damaged`. With
    /// neither readable the agent starts without a saved list (None) rather
    /// than not at all: a node that reboots with its coordinator away still
    /// enforces its local lists, and the kernel's list if it kept one.
    pub fn load(path: &Path) -> Result<Option<Self>, AgentError> {
        match Self::load_generation(path, true) {
            Ok(set) => Ok(set),
            Err(AgentError::Config { message, .. }) => {
                let aside = path.with_extension("damaged");
                tracing::error!(path = %path.display(), error = %message, aside = %aside.display(),
                    "the saved list is damaged: set aside, trying the previous generation");
                let _ = std::fs::rename(path, &aside);
                let _ = std::fs::remove_file(journal_path(path));
                match Self::load_generation(&prev_path(path), false) {
                    Ok(Some(set)) => {
                        tracing::warn!(
                            version = set.version,
                            "using the previous saved generation"
                        );
                        Ok(Some(set))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => {
                        tracing::error!(error = %e, "the previous generation is damaged too: \
                            starting without a saved list");
                        Ok(None)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One generation: the snapshot file, and its journal if asked. A missing
    /// file is `None`, a damaged snapshot an error. A journal record that
    /// does not decode or verify (a torn last append) ends the journal there:
    /// the set is then an earlier version, and the coordinator sends the rest.
    fn load_generation(path: &Path, with_journal: bool) -> Result<Option<Self>, AgentError> {
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
        // The state dir is this node's own: its content was verified before
        // it was written.
        let none = Trust::default();
        let mut set =
            SyncedSet::from_snapshot(&s.lineage, s.version, &s.digest, &s.entries, &[], &none)
                .map_err(|e| bad(e.to_string()))?;
        let journal = journal_path(path);
        if !with_journal {
            return Ok(Some(set));
        }
        let data = match std::fs::read(&journal) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(AgentError::ReadFile {
                    path: journal,
                    source,
                })
            }
        };
        let mut buf = data.as_slice();
        while !buf.is_empty() {
            let applied = pb::Delta::decode_length_delimited(&mut buf)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    set.apply_delta(&d, &mut Pending::default(), &none)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = applied {
                tracing::warn!(path = %journal.display(), version = set.version, error = %e,
                    "persisted journal ends in a damaged record; using the version before it");
                break;
            }
        }
        Ok(Some(set))
    }

    /// Persists the whole set atomically (temp file, fsync, rename) and
    /// empties the journal. The file it replaces is kept as the previous
    /// generation, the fallback should this one ever read back damaged.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let msg = pb::SnapshotChunk {
            version: self.version,
            digest: self.digest.to_bytes(),
            seq: 0,
            last: true,
            entries: self.entries.values().map(entry_to_wire).collect(),
            signature: Vec::new(),
            lineage: self.lineage.clone(),
            moved: None,
        };
        let bytes = msg.encode_to_vec();
        if path.exists() {
            // A hard link, so the current file stays in place until the new
            // one replaces it atomically.
            let prev = prev_path(path);
            let _ = std::fs::remove_file(&prev);
            std::fs::hard_link(path, &prev).map_err(|source| AgentError::WriteFile {
                path: prev.clone(),
                source,
            })?;
        }
        crate::ids::write_atomic(path, &bytes)?;
        match std::fs::remove_file(journal_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AgentError::WriteFile {
                path: journal_path(path),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Persists the deltas of `p` by appending them to the journal (one
    /// fsync); returns the bytes appended.
    pub fn journal(path: &Path, p: &Pending) -> Result<usize, AgentError> {
        if p.journal.is_empty() {
            return Ok(0);
        }
        crate::ids::append_synced(&journal_path(path), &p.journal)?;
        Ok(p.journal.len())
    }
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

    fn delta(prev: u64, v: u64, add: &str, remove: &str, digest: Vec<u8>) -> pb::Delta {
        pb::Delta {
            previous_version: prev,
            version: v,
            digest,
            upserts: vec![e(add)],
            removals: vec![pb::EntryKey {
                prefix: remove.into(),
                ..Default::default()
            }],
            more: false,
            signature: Vec::new(),
            lineage: Vec::new(),
        }
    }

    #[test]
    fn snapshots_and_deltas_are_verified_and_a_bad_one_changes_nothing() {
        let snap = [e("192.0.2.1"), e("192.0.2.2")];
        let bad = SyncedSet::from_snapshot(
            &[],
            3,
            &digest_of(&["192.0.2.1"]),
            &snap,
            &[],
            &Trust::default(),
        );
        assert!(matches!(bad, Err(SetError::Digest { version: 3, .. })));
        let mut set = SyncedSet::from_snapshot(
            &[],
            3,
            &digest_of(&["192.0.2.1", "192.0.2.2"]),
            &snap,
            &[],
            &Trust::default(),
        )
        .unwrap();
        let original = set.clone();
        let good = digest_of(&["192.0.2.2", "192.0.2.3"]);
        let mut p = Pending::default();
        // A tampered delta (digest of another set) is refused and undone.
        let tampered = delta(
            3,
            4,
            "192.0.2.3",
            "192.0.2.1/32",
            digest_of(&["192.0.2.2", "192.0.2.9"]),
        );
        assert!(matches!(
            set.apply_delta(&tampered, &mut p, &Trust::default()),
            Err(SetError::Digest { version: 4, .. })
        ));
        assert_eq!(set, original, "unchanged by a refused delta");
        // A gap is refused.
        let gap = delta(2, 4, "192.0.2.3", "192.0.2.1/32", good.clone());
        assert!(matches!(
            set.apply_delta(&gap, &mut p, &Trust::default()),
            Err(SetError::Gap { have: 3, .. })
        ));
        assert!(p.is_empty());
        set.apply_delta(
            &delta(3, 4, "192.0.2.3", "192.0.2.1/32", good),
            &mut p,
            &Trust::default(),
        )
        .unwrap();
        assert_eq!(set.version, 4);
        let keys: Vec<String> = set.entries.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["192.0.2.2/32", "192.0.2.3/32"]);
        let changes: Vec<(String, bool)> = set
            .changes(&p)
            .iter()
            .map(|(k, v)| (k.to_string(), v.is_some()))
            .collect();
        assert_eq!(
            changes,
            [
                ("192.0.2.1/32".into(), false),
                ("192.0.2.3/32".into(), true)
            ]
        );
        // Enforcing failed: everything the batch did is undone.
        set.rollback(p);
        assert_eq!(set, original);
    }

    #[test]
    fn with_trusted_keys_only_signed_sets_are_accepted() {
        use c2wall_model::sign::Signer32;
        let (_, key) = Signer32::generate();
        let (_, other) = Signer32::generate();
        let trust = Trust::from_hex([key.public_hex().as_str()]).unwrap();
        let d1 = digest_of(&["192.0.2.1"]);
        let snap = [e("192.0.2.1")];
        // Unsigned and wrongly signed snapshots are refused; signed is fine.
        assert!(matches!(
            SyncedSet::from_snapshot(&[], 1, &d1, &snap, &[], &trust),
            Err(SetError::Signature { version: 1 })
        ));
        assert!(
            SyncedSet::from_snapshot(&[], 1, &d1, &snap, &other.sign(&[], 1, &d1), &trust).is_err()
        );
        let mut set =
            SyncedSet::from_snapshot(&[], 1, &d1, &snap, &key.sign(&[], 1, &d1), &trust).unwrap();
        let before = set.clone();
        // A man in the middle adds an entry and fixes up the digest (anyone
        // can compute it) but cannot sign: refused, the set is unchanged.
        let forged = digest_of(&["192.0.2.1", "198.51.100.7"]);
        let mut d = delta(1, 2, "198.51.100.7", "203.0.113.200", forged.clone());
        d.removals.clear();
        d.signature = other.sign(&[], 2, &forged);
        let mut p = Pending::default();
        assert!(matches!(
            set.apply_delta(&d, &mut p, &trust),
            Err(SetError::Signature { version: 2 })
        ));
        assert_eq!(set, before);
        d.signature = key.sign(&[], 2, &forged);
        set.apply_delta(&d, &mut p, &trust).unwrap();
        assert_eq!(set.version, 2);
    }

    #[test]
    fn the_persisted_set_is_snapshot_plus_journal_and_damage_is_handled() {
        let dir = std::env::temp_dir().join(format!("c2wall-synced-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("set.pb");
        assert_eq!(SyncedSet::load(&path).unwrap(), None);
        let mut set = SyncedSet::from_snapshot(
            &[],
            7,
            &digest_of(&["2001:db8::/32"]),
            &[e("2001:db8::/32")],
            &[],
            &Trust::default(),
        )
        .unwrap();
        set.save(&path).unwrap();
        assert_eq!(SyncedSet::load(&path).unwrap().as_ref(), Some(&set));
        // Two journalled deltas come back on load.
        for (v, add, digest) in [
            (8, "192.0.2.1", digest_of(&["2001:db8::/32", "192.0.2.1"])),
            (9, "192.0.2.2", digest_of(&["2001:db8::/32", "192.0.2.2"])),
        ] {
            let mut p = Pending::default();
            let remove = if v == 8 { "198.51.100.1" } else { "192.0.2.1" };
            set.apply_delta(
                &delta(v - 1, v, add, remove, digest),
                &mut p,
                &Trust::default(),
            )
            .unwrap();
            assert!(SyncedSet::journal(&path, &p).unwrap() > 0);
        }
        assert_eq!(SyncedSet::load(&path).unwrap().as_ref(), Some(&set));
        // A torn last record: the load stops at the version before it.
        let j = journal_path(&path);
        let len = std::fs::metadata(&j).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&j).unwrap();
        f.set_len(len - 3).unwrap();
        assert_eq!(SyncedSet::load(&path).unwrap().unwrap().version, 8);
        // A full save empties the journal.
        set.save(&path).unwrap();
        assert!(!j.exists());
        assert_eq!(SyncedSet::load(&path).unwrap(), Some(set));
        // A damaged file: set aside, the previous generation is used.
        let current = SyncedSet::load(&path).unwrap().unwrap();
        let mut newer = current.clone();
        newer.version += 1;
        newer.save(&path).unwrap();
        std::fs::write(&path, b"\x0a\xff garbage").unwrap();
        assert_eq!(SyncedSet::load(&path).unwrap(), Some(current));
        assert!(dir.join("set.damaged").exists());
        // Both damaged: no saved list, but no refusal to start either.
        std::fs::write(&path, b"\x0a\xff garbage").unwrap();
        std::fs::write(prev_path(&path), b"\x0a\xff garbage").unwrap();
        assert_eq!(SyncedSet::load(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn never_backwards_never_another_lineage_unless_moved_by_a_signed_act() {
        use c2wall_model::sign::Signer32;
        let (_, key) = Signer32::generate();
        let (_, other) = Signer32::generate();
        let trust = Trust::from_hex([key.public_hex().as_str()]).unwrap();
        let (a, b) = (vec![0xaa; 16], vec![0xbb; 16]);
        let d = digest_of(&["192.0.2.1"]);
        let snap = |lineage: &[u8], v: u64| {
            SyncedSet::from_snapshot(
                lineage,
                v,
                &d,
                &[e("192.0.2.1")],
                &key.sign(lineage, v, &d),
                &trust,
            )
            .unwrap()
        };
        let have = snap(&a, 5);
        assert!(SyncedSet::default()
            .may_follow(&snap(&b, 1), None, &trust)
            .is_ok());
        assert!(have.may_follow(&snap(&a, 5), None, &trust).is_ok());
        assert!(have.may_follow(&snap(&a, 6), None, &trust).is_ok());
        assert!(matches!(
            have.may_follow(&snap(&a, 4), None, &trust),
            Err(SetError::Older { have: 5, got: 4 })
        ));
        assert!(matches!(
            have.may_follow(&snap(&b, 9), None, &trust),
            Err(SetError::Lineage { .. })
        ));
        let mv = |from_version: u64, by: &Signer32| pb::LineageMove {
            from_lineage: a.clone(),
            from_version,
            to_lineage: b.clone(),
            signature: by.sign_move(&a, from_version, &b),
            ..Default::default()
        };
        // The operator's signed move covers our version: followed, even to a
        // lower version number.
        assert!(have
            .may_follow(&snap(&b, 2), Some(&mv(5, &key)), &trust)
            .is_ok());
        // A move that does not cover our version, or not signed by a trusted
        // key, is not enough.
        assert!(have
            .may_follow(&snap(&b, 2), Some(&mv(4, &key)), &trust)
            .is_err());
        assert!(have
            .may_follow(&snap(&b, 2), Some(&mv(5, &other)), &trust)
            .is_err());
        // A delta of another lineage is refused and changes nothing.
        let mut set = have.clone();
        let mut dl = delta(5, 6, "192.0.2.2", "192.0.2.1/32", digest_of(&["192.0.2.2"]));
        dl.lineage = b.clone();
        assert!(matches!(
            set.apply_delta(&dl, &mut Pending::default(), &Trust::default()),
            Err(SetError::Lineage { .. })
        ));
        assert_eq!(set, have);
    }
}
