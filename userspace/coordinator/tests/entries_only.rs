//! A subscription that asks for entries only (an edge agent's) gets the
//! same set as one with provenance (a downstream coordinator's): the same
//! version, digest and entries, without source, category or times.

mod common;

use c2wall_model::{Record, SetDigest};
use c2wall_proto::v1::{self as pb, agent_sync_client::AgentSyncClient, sync_message::Kind};
use common::{next, rig};

/// The snapshot a fresh subscriber gets: (version, digest, entries).
async fn snapshot(rig: &common::Rig, entries_only: bool) -> (u64, Vec<u8>, Vec<pb::Entry>) {
    let mut s = AgentSyncClient::new(rig.channel())
        .subscribe(pb::SubscribeRequest {
            agent_id: "edge-1".into(),
            entries_only,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    loop {
        match next(&mut s).await {
            Kind::Snapshot(c) => {
                entries.extend(c.entries);
                if c.last {
                    return (c.version, c.digest, entries);
                }
            }
            Kind::Control(_) => {}
            other => panic!("before the snapshot's last chunk: {other:?}"),
        }
    }
}

#[tokio::test]
async fn entries_only_snapshots_are_the_same_set_without_provenance() {
    let rig = rig("entries-only").await;
    let prefixes = ["192.0.2.1", "198.51.100.0/24", "2001:db8::/48"];
    let v = rig.publish(&prefixes, &[]).await.unwrap().version;
    let full = snapshot(&rig, false).await;
    let lean = snapshot(&rig, true).await;
    assert_eq!((full.0, lean.0), (v, v));
    assert_eq!(full.1, lean.1, "one digest for both");
    let enforced = |es: &[pb::Entry]| -> Vec<c2wall_model::Entry> {
        es.iter()
            .map(|e| Record::try_from(e).unwrap().entry)
            .collect()
    };
    assert_eq!(enforced(&full.2), enforced(&lean.2));
    assert_eq!(enforced(&lean.2).len(), prefixes.len());
    assert_eq!(
        SetDigest::of(&enforced(&lean.2)).to_bytes(),
        lean.1,
        "the digest covers what the lean entries carry"
    );
    for e in &full.2 {
        assert_eq!((e.source.as_str(), e.confidence), ("feed-a", 90));
        assert!(e.created_at > 0 && !e.created_by.is_empty(), "{e:?}");
    }
    for e in &lean.2 {
        let bare = pb::Entry {
            key: e.key.clone(),
            direction: e.direction,
            action: e.action,
            ..Default::default()
        };
        assert_eq!(e, &bare, "nothing beyond key, direction and action");
    }
}
