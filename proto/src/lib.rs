//! The c2wall gRPC API. The code under `generated/` is produced from
//! `c2wall/v1/c2wall.proto` and committed, so building needs no `protoc`;
//! `tests/bootstrap.rs` regenerates it and fails if it differs.

#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v1 {
    include!("generated/c2wall.v1.rs");
}

/// Field number of `SnapshotChunk.entries`: writers that encode the entries
/// straight into a chunk's bytes (the coordinator's snapshot, a
/// subscriber's saved set) append them under this key.
pub const SNAPSHOT_CHUNK_ENTRIES: u32 = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn snapshot_entries_appended_under_their_field_decode_as_the_chunks_entries() {
        let e = v1::Entry {
            key: Some(v1::EntryKey {
                prefix: "192.0.2.1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let head = v1::SnapshotChunk {
            version: 7,
            last: true,
            ..Default::default()
        };
        let mut b = head.encode_to_vec();
        prost::encoding::message::encode(SNAPSHOT_CHUNK_ENTRIES, &e, &mut b);
        let whole = v1::SnapshotChunk {
            entries: vec![e],
            ..head
        };
        assert_eq!(v1::SnapshotChunk::decode(b.as_slice()).unwrap(), whole);
    }
}
