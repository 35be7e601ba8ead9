//! Structure-aware inputs for `c2wall-fuzz`: sync messages built with
//! `arbitrary` from random bytes (valid structures, odd values), and a
//! mutator for their encodings.

use arbitrary::Arbitrary;
use c2wall_proto::v1 as pb;
use rand::Rng;

#[derive(Arbitrary, Debug)]
pub enum FPrefix {
    V4([u8; 4], u8),
    V6([u8; 16], u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
pub struct FEntry {
    prefix: FPrefix,
    protocol: i32,
    port: u32,
    action: i32,
    direction: i32,
    source: String,
    category: String,
    reference: String,
    confidence: u32,
    valid_from: i64,
    valid_until: i64,
    promote_at: i64,
}

impl FEntry {
    pub fn wire(&self) -> pb::Entry {
        let prefix = match &self.prefix {
            FPrefix::V4(a, l) => format!("{}/{}", std::net::Ipv4Addr::from(*a), l % 40),
            FPrefix::V6(a, l) => format!("{}/{}", std::net::Ipv6Addr::from(*a), l % 140),
            FPrefix::Text(t) => t.clone(),
        };
        pb::Entry {
            key: Some(pb::EntryKey {
                prefix,
                protocol: self.protocol % 4,
                port: self.port % 70_000,
                domain: String::new(),
            }),
            direction: self.direction % 5,
            action: self.action % 4,
            source: self.source.clone(),
            category: self.category.clone(),
            reference: self.reference.clone(),
            confidence: self.confidence % 120,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            promote_at: self.promote_at,
            ..Default::default()
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum FMsg {
    Snapshot {
        version: u64,
        seq: u32,
        last: bool,
        entries: Vec<FEntry>,
        digest: Vec<u8>,
        lineage: Vec<u8>,
    },
    Delta {
        previous: u64,
        version: u64,
        upserts: Vec<FEntry>,
        removals: Vec<FEntry>,
        more: bool,
        digest: Vec<u8>,
        lineage: Vec<u8>,
    },
    Heartbeat(u64, i64),
    Control(String),
}

impl FMsg {
    pub fn wire(&self) -> pb::SyncMessage {
        use pb::sync_message::Kind;
        let kind = match self {
            FMsg::Snapshot {
                version,
                seq,
                last,
                entries,
                digest,
                lineage,
            } => Kind::Snapshot(pb::SnapshotChunk {
                version: *version % 8,
                digest: digest.clone(),
                seq: *seq % 4,
                last: *last,
                entries: entries.iter().map(FEntry::wire).collect(),
                lineage: lineage.clone(),
                ..Default::default()
            }),
            FMsg::Delta {
                previous,
                version,
                upserts,
                removals,
                more,
                digest,
                lineage,
            } => Kind::Delta(pb::Delta {
                previous_version: *previous % 8,
                version: *version % 8,
                digest: digest.clone(),
                upserts: upserts.iter().map(FEntry::wire).collect(),
                removals: removals.iter().filter_map(|e| e.wire().key).collect(),
                more: *more,
                lineage: lineage.clone(),
                ..Default::default()
            }),
            FMsg::Heartbeat(v, t) => Kind::Heartbeat(pb::Heartbeat {
                latest_version: *v,
                server_time: *t,
            }),
            FMsg::Control(m) => Kind::Control(pb::Control { mode: m.clone() }),
        };
        pb::SyncMessage { kind: Some(kind) }
    }
}

/// Flips, drops and inserts a few bytes.
pub fn mutate(rng: &mut impl Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(0..4) {
        match rng.random_range(0..4) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b.truncate(i);
            }
            2 => {
                let i = rng.random_range(0..=b.len());
                b.insert(i, rng.random());
            }
            _ => {}
        }
    }
    b
}
