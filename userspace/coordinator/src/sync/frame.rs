//! Framing: lists as the bytes a Subscribe stream carries. A delta is
//! framed once, at commit, and every stream shares the same bytes; a
//! snapshot once per version. Nothing is split by entry count: frames are
//! cut by encoded size.

use bytes::Bytes;
use c2wall_model::sign::Signer32;
use c2wall_proto::v1 as pb;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use c2wall_model::{parts::in_parts, wire::encode_entry_field};
use c2wall_proto::SNAPSHOT_CHUNK_ENTRIES as ENTRIES;

use crate::state::State;

/// Field numbers of `SyncMessage.kind`.
pub const SNAPSHOT: u32 = 1;
pub const DELTA: u32 = 2;

/// Frames an encoded message as a `SyncMessage` with it in field `field`:
/// byte-identical to encoding the SyncMessage itself.
pub fn frame(field: u32, encoded: &[u8]) -> Bytes {
    frame_of(field, &[encoded])
}

/// [`frame`] of the concatenation of `parts`, copied once.
fn frame_of(field: u32, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = Vec::with_capacity(len + 16);
    encode_key(field, WireType::LengthDelimited, &mut b);
    encode_varint(len as u64, &mut b);
    for p in parts {
        b.extend_from_slice(p);
    }
    Bytes::from(b)
}

/// The kill switch's word to one agent (None: run in your own mode).
pub fn control(mode: Option<c2wall_model::Mode>) -> Bytes {
    let m = pb::SyncMessage {
        kind: Some(pb::sync_message::Kind::Control(pb::Control {
            mode: c2wall_model::Mode::to_wire(mode).into(),
        })),
    };
    Bytes::from(m.encode_to_vec())
}

pub fn heartbeat(latest_version: u64, server_time: i64) -> Bytes {
    let m = pb::SyncMessage {
        kind: Some(pb::sync_message::Kind::Heartbeat(pb::Heartbeat {
            latest_version,
            server_time,
        })),
    };
    Bytes::from(m.encode_to_vec())
}

/// Every frame a subscriber receives stays under this many encoded bytes: a
/// quarter of the 4 MiB gRPC receive limit agents keep, so that no list
/// content (entries carry up to ~2.5 KB of provenance each) can make a frame
/// an agent cannot take.
pub const FRAME_BYTES: usize = 1 << 20;

/// Splits `items` into runs whose encoded size (as repeated fields) stays
/// under `budget` bytes; each run holds at least one item.
pub fn runs_by_bytes<T: Message>(items: &[T], budget: usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = item.encoded_len();
        // Key, length varint and the item itself.
        let size = n + 1 + prost::length_delimiter_len(n);
        if i > start && bytes + size > budget {
            runs.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The framed messages of one encoded delta: itself, or parts of at most
/// [`FRAME_BYTES`] each (see `Delta.more`).
pub fn delta_frames(encoded: &[u8]) -> Vec<Bytes> {
    if encoded.len() <= FRAME_BYTES {
        return vec![frame(DELTA, encoded)];
    }
    let d = pb::Delta::decode(encoded).expect("encoded by us");
    // Room for the versions, digest and signature of every part.
    let budget = FRAME_BYTES - 512;
    let parts: Vec<pb::Delta> = runs_by_bytes(&d.removals, budget)
        .into_iter()
        .map(|r| (Vec::new(), r.to_vec()))
        .chain(
            runs_by_bytes(&d.upserts, budget)
                .into_iter()
                .map(|u| (u.to_vec(), Vec::new())),
        )
        .map(|(upserts, removals)| pb::Delta {
            previous_version: d.previous_version,
            version: d.version,
            digest: d.digest.clone(),
            upserts,
            removals,
            more: true,
            signature: d.signature.clone(),
            lineage: d.lineage.clone(),
        })
        .collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.more = i + 1 < n;
            frame(DELTA, &p.encode_to_vec())
        })
        .collect()
}

/// What each entry of a snapshot carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// The effective record with its provenance: a downstream coordinator
    /// keeps and shows it.
    Records = 0,
    /// Key, direction and action alone: an edge agent keeps nothing else,
    /// and a million-entry snapshot is then a fraction of the bytes to
    /// build, send and decode. The digest covers the same either way.
    EntriesOnly = 1,
}

impl Detail {
    /// What a subscription asked for (`SubscribeRequest.entries_only`).
    pub fn asked(entries_only: bool) -> Detail {
        match entries_only {
            true => Detail::EntriesOnly,
            false => Detail::Records,
        }
    }
}

/// What a snapshot is signed and framed with.
pub struct SnapshotSeal<'a> {
    pub signer: Option<&'a Signer32>,
    pub lineage: &'a [u8],
    /// The operator's move to this lineage in force, unsigned.
    pub moved: Option<&'a pb::LineageMove>,
}

/// The snapshot of the current set, its entries with `detail`, in chunks of
/// at most [`FRAME_BYTES`]; the last carries the signature and the lineage
/// move in force, signed with the signer in use.
pub fn snapshot_chunks(seal: &SnapshotSeal<'_>, state: &State, detail: Detail) -> Vec<Bytes> {
    let (signer, lineage) = (seal.signer, seal.lineage.to_vec());
    let digest = state.digest.to_bytes();
    let signature = signer
        .map(|s| s.sign(&lineage, state.version, &digest))
        .unwrap_or_default();
    let moved = seal.moved.cloned().map(|mut m| {
        m.signature = signer
            .map(|s| s.sign_move(&m.from_lineage, m.from_version, &m.to_lineage))
            .unwrap_or_default();
        m
    });
    // The entries are encoded one part per core, each part into runs of
    // wire bytes under the frame budget; each chunk is then its other fields
    // followed by one run (a repeated field may follow the others: it
    // decodes the same). A million-entry set never exists as wire messages
    // all at once, only as the encoded bytes.
    let budget = FRAME_BYTES - 512;
    let mut runs: Vec<Vec<u8>> = in_parts(state.listed(), PART_MIN, |r| match detail {
        Detail::Records => {
            let records = state.effective_records(r.start).take(r.len());
            encode_runs(records, budget, |r, out| {
                prost::encoding::message::encode(ENTRIES, &pb::Entry::from(r), out)
            })
        }
        Detail::EntriesOnly => {
            let entries = state.effective_entries(r.start).take(r.len());
            encode_runs(entries, budget, |e, out| {
                encode_entry_field(ENTRIES, e, out)
            })
        }
    })
    .into_iter()
    .flatten()
    .collect();
    if runs.is_empty() {
        // An empty set is one chunk with no entries.
        runs.push(Vec::new());
    }
    let last = runs.len() - 1;
    runs.into_iter()
        .enumerate()
        .map(|(seq, entries)| {
            let c = pb::SnapshotChunk {
                version: state.version,
                digest: digest.clone(),
                seq: seq as u32,
                last: seq == last,
                entries: Vec::new(),
                signature: if seq == last {
                    signature.clone()
                } else {
                    Vec::new()
                },
                lineage: lineage.clone(),
                moved: if seq == last { moved.clone() } else { None },
            };
            frame_of(SNAPSHOT, &[&c.encode_to_vec(), &entries])
        })
        .collect()
}

/// Effective entries below which one thread encodes a whole snapshot (a
/// thread costs more than it saves).
const PART_MIN: usize = 50_000;

/// `items` as `SnapshotChunk.entries` fields (each appended by `encode`),
/// cut into runs of at most `budget` bytes (each run holds at least one
/// entry).
fn encode_runs<T>(
    items: impl Iterator<Item = T>,
    budget: usize,
    encode: impl Fn(&T, &mut Vec<u8>),
) -> Vec<Vec<u8>> {
    let (mut runs, mut run, mut one) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        one.clear();
        encode(&item, &mut one);
        if !run.is_empty() && run.len() + one.len() > budget {
            // The next run's room taken at once (a large set's runs are
            // full ones): grown step by step, each was copied over and over.
            runs.push(std::mem::replace(&mut run, Vec::with_capacity(budget)));
        }
        run.extend_from_slice(&one);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests;
