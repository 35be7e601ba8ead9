//! The gRPC services in-process over a duplex pipe: no sockets, no root.

mod common;

use std::time::Duration;

use c2wall_proto::v1::{self as pb, sync_message::Kind};
use common::*;
use tonic::Code;

#[tokio::test]
async fn snapshot_then_live_deltas_with_digests() {
    let r = rig("snap").await;
    let v1 = r
        .publish(&["192.0.2.1", "192.0.2.0/28"], &[])
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let mut s = r.subscribe(0, vec![], false).await;
    let Kind::Snapshot(snap) = next(&mut s).await else {
        panic!("snapshot first")
    };
    assert!(snap.last);
    assert_eq!((snap.version, snap.digest.clone()), (1, v1.digest.clone()));
    assert_eq!(prefixes(&snap.entries), ["192.0.2.0/28", "192.0.2.1/32"]);
    let v2 = r.publish(&["198.51.100.7"], &["192.0.2.1"]).await.unwrap();
    let Kind::Delta(d) = next(&mut s).await else {
        panic!("delta")
    };
    assert_eq!((d.previous_version, d.version), (1, 2));
    assert_eq!(d.digest, v2.digest);
    assert_eq!(prefixes(&d.upserts), ["198.51.100.7/32"]);
    assert_eq!(d.removals[0].prefix, "192.0.2.1/32");
    // The digest is of the set: the same set by another route has the same digest.
    let other = rig("snap2").await;
    let v = other
        .publish(&["192.0.2.0/28", "198.51.100.7"], &[])
        .await
        .unwrap();
    assert_eq!(v.digest, v2.digest);
}

#[tokio::test]
async fn resume_sends_only_the_missing_deltas() {
    let r = rig("resume").await;
    let v1 = r.publish(&["192.0.2.1"], &[]).await.unwrap();
    r.publish(&["192.0.2.2"], &[]).await.unwrap();
    r.publish(&["192.0.2.3"], &[]).await.unwrap();
    let mut s = r.subscribe(1, v1.digest, false).await;
    for want in [2, 3] {
        let Kind::Delta(d) = next(&mut s).await else {
            panic!("deltas, not a snapshot")
        };
        assert_eq!(d.version, want);
    }
    // A current agent gets nothing but heartbeats, then live deltas.
    r.publish(&["192.0.2.4"], &[]).await.unwrap();
    let Kind::Delta(d) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(d.version, 4);
}

#[tokio::test]
async fn compacted_log_or_wrong_digest_means_a_snapshot() {
    let r = rig("compact").await;
    let v1 = r.publish(&["192.0.2.1"], &[]).await.unwrap();
    for i in 2..=6 {
        r.publish(&[&format!("192.0.2.{i}")], &[]).await.unwrap();
    }
    let mut s = r.subscribe(1, vec![0; 32], false).await;
    assert!(
        matches!(next(&mut s).await, Kind::Snapshot(_)),
        "digest mismatch"
    );
    let mut s = r.subscribe(1, v1.digest.clone(), true).await;
    assert!(
        matches!(next(&mut s).await, Kind::Snapshot(_)),
        "snapshot asked for"
    );
    r.coord.compact(2).unwrap();
    let mut s = r.subscribe(1, v1.digest.clone(), false).await;
    let Kind::Snapshot(snap) = next(&mut s).await else {
        panic!("log compacted: snapshot")
    };
    assert_eq!((snap.version, snap.entries.len()), (6, 6));
    let v5 = r.coord.history(6, 1).unwrap().remove(0);
    let mut s = r.subscribe(5, v5.digest, false).await;
    let Kind::Delta(d) = next(&mut s).await else {
        panic!("still in the log: delta")
    };
    assert_eq!(d.version, 6);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_errors_name_the_field() {
    let r = rig("atomic").await;
    r.publish(&["192.0.2.1"], &[]).await.unwrap();
    let e = r
        .publish(&["198.51.100.1", "198.51.100.9/24"], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("upserts[1].key.prefix:"),
        "{}",
        e.message()
    );
    let e = r
        .publish(&["198.51.100.1"], &["203.0.113.5"])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("withdrawals[0]"), "{}", e.message());
    let e = r
        .publish(&["198.51.100.1", "198.51.100.1/32"], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("upserts[1]") && e.message().contains("upserts[0]"));
    let e = r.publish(&[], &[]).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        r.coord.latest_version(),
        1,
        "no refused batch made a version"
    );
    let list = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prefixes(&list.entries), ["192.0.2.1/32"]);
}

#[tokio::test]
async fn a_slow_subscriber_is_cut_off_without_delaying_others() {
    let r = rig_with(
        store_path("slow"),
        |s| {
            s.stream_buffer = 2;
            s.send_timeout = Duration::from_millis(300);
        },
        4,
    )
    .await;
    r.publish(&["192.0.2.1"], &[]).await.unwrap();
    let _stuck = r.subscribe(0, vec![], false).await; // never read
    let mut fast = r.subscribe(0, vec![], false).await;
    assert!(matches!(next(&mut fast).await, Kind::Snapshot(_)));
    let start = std::time::Instant::now();
    // Deltas big enough (500 entries) to fill HTTP/2 flow-control windows, so
    // the stuck client really exerts backpressure.
    for i in 2..=30u64 {
        let batch: Vec<String> = (0..500)
            .map(|j| format!("10.{i}.{}.{}", j / 256, j % 256))
            .collect();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        r.publish(&refs, &[]).await.unwrap();
        let Kind::Delta(d) = next(&mut fast).await else {
            panic!()
        };
        assert_eq!(d.version, i);
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "fast subscriber kept pace: {:?}",
        start.elapsed()
    );
    // The stuck one was cut off: it ends before it has every delta (it must
    // resubscribe and catch up from the log).
    let mut stuck = _stuck;
    let mut deltas = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stuck.message().await {
                Ok(Some(pb::SyncMessage {
                    kind: Some(Kind::Delta(_)),
                })) => deltas += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await
    .expect("the stuck stream ends");
    assert!(
        deltas < 29,
        "cut off before receiving all 29 deltas (got {deltas})"
    );
}

#[tokio::test]
async fn acknowledged_versions_survive_a_restart() {
    let path = store_path("durable");
    let (digest, version) = {
        let r = rig_with(path.clone(), |_| {}, 16).await;
        r.publish(&["192.0.2.1", "2001:db8::/32"], &[])
            .await
            .unwrap();
        let v = r.publish(&["192.0.2.2"], &["192.0.2.1"]).await.unwrap();
        std::mem::forget(r); // keep the file; the "process" just stops
        (v.digest, v.version)
    };
    let r = rig_with(path, |_| {}, 16).await;
    assert_eq!(r.coord.latest_version(), version);
    assert_eq!(r.coord.digest().to_bytes(), digest);
    let list = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prefixes(&list.entries), ["192.0.2.2/32", "2001:db8::/32"]);
    let h = r
        .publisher()
        .history(pb::HistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(h.versions[0].actor, "analyst");
}

#[tokio::test]
async fn rollback_restores_an_earlier_set_as_a_new_version() {
    let r = rig("rollback").await;
    let v1 = r.publish(&["192.0.2.1", "192.0.2.2"], &[]).await.unwrap();
    r.publish(&["192.0.2.3"], &["192.0.2.1"]).await.unwrap();
    let mut s = r.subscribe(0, vec![], false).await;
    next(&mut s).await;
    let rb = r
        .publisher()
        .rollback(pb::RollbackRequest {
            version: 1,
            reason: "bad push".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rb.version, 3);
    assert_eq!(rb.digest, v1.digest, "same set as version 1");
    let Kind::Delta(d) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(prefixes(&d.upserts), ["192.0.2.1/32"]);
    assert_eq!(d.removals[0].prefix, "192.0.2.3/32");
    let e = r
        .publisher()
        .rollback(pb::RollbackRequest {
            version: 3,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn expired_entries_leave_in_a_new_version() {
    let r = rig("expiry").await;
    // Windows are whole seconds: start just after a second begins, so the
    // publish below lands in the same second the windows are counted from.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1010 - ms)).await;
    let mut e = entry("192.0.2.1");
    e.valid_until = c2wall_coordinator::core::now() + 1;
    let mut later = entry("192.0.2.3");
    later.valid_from = c2wall_coordinator::core::now() + 1;
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![e, entry("192.0.2.2"), later],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut s = r.subscribe(0, vec![], false).await;
    let Kind::Snapshot(snap) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(snap.entries.len(), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let v = r.coord.tick().unwrap().expect("an expiry version");
    assert_eq!(
        (v.version, v.actor.as_str(), v.removals, v.upserts),
        (2, "expiry", 1, 1)
    );
    let Kind::Delta(d) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(d.removals[0].prefix, "192.0.2.1/32");
    assert_eq!(
        d.upserts[0].key.as_ref().unwrap().prefix,
        "192.0.2.3/32",
        "its window opened"
    );
    assert!(r.coord.tick().unwrap().is_none(), "nothing more to expire");
}

#[tokio::test]
async fn two_sources_keep_both_records_and_list_explain_page() {
    let r = rig("sources").await;
    let mut b = entry("192.0.2.0/24");
    b.source = "feed-b".into();
    b.action = pb::Action::Monitor as i32;
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("192.0.2.0/24"), b, entry("192.0.2.7")],
            ..Default::default()
        })
        .await
        .unwrap();
    let list = r
        .publisher()
        .list(pb::ListRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.entries.len(), 2);
    let rest = r
        .publisher()
        .list(pb::ListRequest {
            page_size: 2,
            page_token: list.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.entries.len(), 1);
    assert!(rest.next_page_token.is_empty());
    // Pages follow keys: a record published before the first page's end does
    // not shift the second page.
    let mut early = entry("10.0.0.1");
    early.source = "feed-z".into();
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![early],
            ..Default::default()
        })
        .await
        .unwrap();
    let again = r
        .publisher()
        .list(pb::ListRequest {
            page_size: 2,
            page_token: list.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.entries, rest.entries);
    let inside = r
        .publisher()
        .list(pb::ListRequest {
            within: "192.0.2.0/25".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inside.entries.len(), 1, "only 192.0.2.7 is inside the /25");
    // Get: both sources' records and the effective entry (drop beats monitor).
    let got = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key("192.0.2.0/24")),
        })
        .await
        .unwrap()
        .into_inner();
    let sources: Vec<&str> = got.records.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(sources, ["feed-a", "feed-b"]);
    assert_eq!(got.effective.unwrap().action, pb::Action::Drop as i32);
    let missing = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key("198.51.100.0/24")),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key("192.0.2.1/24")),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("key.prefix"), "{}", bad.message());
    let ex = r
        .publisher()
        .explain(pb::ExplainRequest {
            address: "192.0.2.7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ex.matches.len(), 3);
    assert_eq!(
        ex.matches[0].key.as_ref().unwrap().prefix,
        "192.0.2.7/32",
        "most specific first"
    );
    // Withdrawing one source's record keeps the other's.
    r.publisher()
        .publish(pb::PublishRequest {
            withdrawals: vec![pb::Withdrawal {
                key: Some(key("192.0.2.0/24")),
                source: "feed-a".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut s = r.subscribe(0, vec![], false).await;
    let Kind::Snapshot(snap) = next(&mut s).await else {
        panic!()
    };
    let net = snap
        .entries
        .iter()
        .find(|e| e.key.as_ref().unwrap().prefix == "192.0.2.0/24")
        .unwrap();
    assert_eq!(
        (net.source.as_str(), net.action),
        ("feed-b", pb::Action::Monitor as i32)
    );
}

#[tokio::test]
async fn a_large_delta_is_sent_in_parts_under_the_message_limit() {
    use prost::Message;
    let r = rig("parts").await;
    let first = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("192.0.2.1")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut live = r
        .subscribe(first.version, first.digest.clone(), false)
        .await;
    let n = 40_000u32;
    let upserts: Vec<pb::Entry> = (0..n)
        .map(|i| entry(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()))
        .collect();
    let v = r
        .publisher()
        .publish(pb::PublishRequest {
            upserts,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    // A subscriber catching up from the log gets the same parts.
    let mut catch_up = r.subscribe(first.version, first.digest, false).await;
    for (name, stream) in [("live", &mut live), ("catch-up", &mut catch_up)] {
        let (mut got, mut parts) = (0, 0);
        loop {
            let Kind::Delta(d) = next(stream).await else {
                panic!("{name}: a delta")
            };
            assert_eq!(d.version, v);
            assert!(
                d.encoded_len() < 2 << 20,
                "{name}: part of {} bytes",
                d.encoded_len()
            );
            got += d.upserts.len();
            parts += 1;
            if !d.more {
                break;
            }
        }
        assert_eq!(got, n as usize, "{name}");
        assert!(parts >= 2, "{name}: {parts} parts");
    }
}
