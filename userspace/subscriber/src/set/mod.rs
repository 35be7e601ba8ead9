//! The coordinator's set as a subscriber holds it: entries, version, digest.
//!
//! Deltas are applied in place and verified against the coordinator's digest;
//! a delta that does not verify is undone, so the set is always one the
//! coordinator published. On disk the set is a snapshot file plus a journal of
//! the deltas applied since (appended with one fsync per batch), rewritten as
//! one snapshot once the journal outgrows it: persisting a delta costs the
//! delta, not the list.

use std::collections::{BTreeMap, BTreeSet};

use c2wall_model::{
    sign::Trust,
    wire::{identity_from_wire, WireError},
    Entry, Identity, SetDigest,
};
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::value::SetValue;

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
pub type EntryChange<V = Entry> = (Identity, Option<V>);

#[derive(Clone, Debug, PartialEq)]
pub struct SyncedSet<V = Entry> {
    /// The coordinator store's lineage (empty: none yet, or a set saved
    /// before lineages).
    pub lineage: Vec<u8>,
    pub version: u64,
    pub digest: SetDigest,
    pub entries: BTreeMap<Identity, V>,
}

impl<V> Default for SyncedSet<V> {
    fn default() -> Self {
        SyncedSet {
            lineage: Vec::new(),
            version: 0,
            digest: SetDigest::default(),
            entries: BTreeMap::new(),
        }
    }
}

/// Deltas applied to a set but not yet enforced: what to undo if enforcing
/// fails, and what to journal if it succeeds.
pub struct Pending<V = Entry> {
    base: Option<(u64, SetDigest)>,
    undo: Vec<EntryChange<V>>,
    touched: BTreeSet<Identity>,
    journal: Vec<u8>,
}

impl<V> Default for Pending<V> {
    fn default() -> Self {
        Pending {
            base: None,
            undo: Vec::new(),
            touched: BTreeSet::new(),
            journal: Vec::new(),
        }
    }
}

impl<V> Pending<V> {
    pub fn is_empty(&self) -> bool {
        self.base.is_none()
    }
}

fn value_of<V: SetValue>(e: &pb::Entry) -> Result<V, SetError> {
    Ok(V::from_wire(e)?)
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

impl<V: SetValue> SyncedSet<V> {
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
        let mut gathered = Gathered::default();
        gathered.push(entries)?;
        Self::from_gathered(lineage, version, digest, gathered, signature, trust)
    }

    /// A complete snapshot whose entries were decoded as they arrived,
    /// verified as [`SyncedSet::from_snapshot`] verifies.
    pub fn from_gathered(
        lineage: &[u8],
        version: u64,
        digest: &[u8],
        gathered: Gathered<V>,
        signature: &[u8],
        trust: &Trust,
    ) -> Result<Self, SetError> {
        let (map, ours) = gathered.finish();
        check_digest(version, ours, digest)?;
        check_signature(trust, lineage, version, &ours, signature)?;
        Ok(SyncedSet {
            lineage: lineage.to_vec(),
            version,
            digest: ours,
            entries: map,
        })
    }

    /// Stands for the list the kernel holds (its version and lineage, no
    /// entries) until the coordinator's snapshot replaces it: subscribing
    /// from it asks for a snapshot, and nothing older is accepted.
    pub fn placeholder(version: u64, lineage: &[u8; 16]) -> Self {
        SyncedSet {
            lineage: if *lineage == [0; 16] {
                Vec::new()
            } else {
                lineage.to_vec()
            },
            version,
            ..Default::default()
        }
    }

    /// Whether a verified snapshot `next` may replace this set: never an
    /// older version, never another lineage, unless the snapshot carries a
    /// move from our lineage (up to at least our version) signed by a trusted
    /// key (any move, when no key is trusted). A set with nothing applied
    /// takes anything.
    pub fn may_follow(
        &self,
        next: &Self,
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
        p: &mut Pending<V>,
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
            .map(value_of::<V>)
            .collect::<Result<Vec<_>, _>>()?;
        let (version, digest, mark) = (self.version, self.digest, p.undo.len());
        for id in removals {
            let old = self.entries.remove(&id);
            if let Some(old) = &old {
                self.digest.remove(old.entry());
            }
            p.touched.insert(id.clone());
            p.undo.push((id, old));
        }
        for v in upserts {
            let id = v.entry().identity();
            self.digest.add(v.entry());
            let old = self.entries.insert(id.clone(), v);
            if let Some(old) = &old {
                self.digest.remove(old.entry());
            }
            p.touched.insert(id.clone());
            p.undo.push((id, old));
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

    fn undo_to(&mut self, p: &mut Pending<V>, mark: usize) {
        for (id, old) in p.undo.drain(mark..).rev() {
            match old {
                Some(e) => self.entries.insert(id, e),
                None => self.entries.remove(&id),
            };
        }
    }

    /// Undoes every delta collected in `p`.
    pub fn rollback(&mut self, mut p: Pending<V>) {
        self.undo_to(&mut p, 0);
        if let Some((v, d)) = p.base {
            (self.version, self.digest) = (v, d);
        }
    }

    /// The net change `p` made: each touched entry's current value.
    pub fn changes(&self, p: &Pending<V>) -> Vec<EntryChange<V>> {
        p.touched
            .iter()
            .map(|id| (id.clone(), self.entries.get(id).cloned()))
            .collect()
    }
}

mod build;
mod file;

pub use build::Gathered;
pub use file::{journal_len, journal_path, prev_path};

#[cfg(test)]
mod tests;
