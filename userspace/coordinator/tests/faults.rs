//! Faults found by adversarial testing, each reproduced in-process: frames an
//! agent cannot take, fields that break replies, imports that half-apply,
//! replies too large to read, and input echoed into errors.

mod common;

use std::{sync::Arc, time::Duration};

use c2wall_coordinator::service::ACTOR_HEADER;
use c2wall_model::limits;
use c2wall_proto::v1::{self as pb, sync_message::Kind};
use common::*;
use prost::Message;
use tonic::{Code, Request};

fn with_reference(prefix: &str, reference_bytes: usize) -> pb::Entry {
    pb::Entry {
        reference: "r".repeat(reference_bytes),
        ..entry(prefix)
    }
}

/// 10.x.y.z hosts, `n` of them.
fn hosts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

async fn publish_entries(
    r: &Rig,
    upserts: Vec<pb::Entry>,
    reason: &str,
) -> Result<u64, tonic::Status> {
    let mut req = Request::new(pb::PublishRequest {
        expedite: false,
        upserts,
        withdrawals: vec![],
        reason: reason.into(),
    });
    req.metadata_mut()
        .insert(ACTOR_HEADER, "analyst".parse().unwrap());
    r.publisher()
        .publish(req)
        .await
        .map(|r| r.into_inner().version)
}

/// Every frame of a snapshot with large provenance, and of a large delta,
/// arrives under the 4 MiB an agent's client takes (with entry-count framing,
/// the first snapshot chunk was 5.4 MB and the delta 4.2 MB: the client
/// failed to decode them and a new agent never synced).
#[tokio::test]
async fn frames_stay_under_the_receive_limit_whatever_the_entries_carry() {
    let r = rig("frames").await;
    let mut entries: Vec<pb::Entry> = hosts(8_991)
        .iter()
        .map(|h| with_reference(h, 600))
        .collect();
    // Two publishes: one would pass the 4 MiB a request may carry.
    let rest = entries.split_off(4_500);
    publish_entries(&r, entries, "big provenance")
        .await
        .unwrap();
    let v1 = publish_entries(&r, rest, "big provenance").await.unwrap();
    let mut s = r.subscribe(0, vec![], true).await;
    let mut got = 0;
    let mut chunks = 0;
    loop {
        // The client refuses anything over 4 MiB: a message here is a frame
        // it could take.
        let m = s
            .message()
            .await
            .expect("a frame the agent can decode")
            .unwrap();
        if let Some(Kind::Snapshot(c)) = m.kind {
            assert!(
                c.encoded_len() <= 1 << 20,
                "chunk of {} bytes",
                c.encoded_len()
            );
            got += c.entries.len();
            chunks += 1;
            if c.last {
                assert_eq!(c.version, v1);
                break;
            }
        }
    }
    assert_eq!(got, 8_991);
    assert!(chunks >= 6, "split by bytes: {chunks} chunks");
    // A delta of 999 entries with 2 KB references each (2 MB) comes in parts.
    let delta: Vec<pb::Entry> = (0..999)
        .map(|i| with_reference(&format!("192.168.{}.{}", i / 256, i % 256), 2000))
        .collect();
    let v2 = publish_entries(&r, delta, "big delta").await.unwrap();
    let mut parts = 0;
    let mut upserts = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("the delta arrives")
            .expect("a part the agent can decode")
            .unwrap();
        if let Some(Kind::Delta(d)) = m.kind {
            assert_eq!(d.version, v2);
            assert!(
                d.encoded_len() <= 1 << 20,
                "part of {} bytes",
                d.encoded_len()
            );
            parts += 1;
            upserts += d.upserts.len();
            if !d.more {
                break;
            }
        }
    }
    assert_eq!(upserts, 999);
    assert!(parts >= 2, "{parts} parts");
}

/// Fields are bounded at the API, refused naming the field and the limit;
/// a time past year 9999 (which made `c2wall list` panic) is refused.
#[tokio::test]
async fn oversized_fields_and_times_are_refused_naming_field_and_limit() {
    let r = rig("bounds").await;
    let cases = [
        (
            with_reference("192.0.2.1", limits::REFERENCE_BYTES + 1),
            "upserts[0].reference: 2049 bytes, the limit is 2048",
        ),
        (
            pb::Entry {
                source: "s".repeat(limits::SOURCE_BYTES + 1),
                ..entry("192.0.2.1")
            },
            "upserts[0].source: 129 bytes, the limit is 128",
        ),
        (
            pb::Entry {
                valid_until: limits::MAX_TIME + 1,
                ..entry("192.0.2.1")
            },
            "upserts[0].valid_until: 253402300800 is outside",
        ),
        (
            pb::Entry {
                action: pb::Action::Monitor as i32,
                promote_at: 360_000_000_000_000,
                ..entry("192.0.2.1")
            },
            "upserts[0].promote_at",
        ),
    ];
    for (e, want) in cases {
        let err = publish_entries(&r, vec![e], "x").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().starts_with(want), "{}", err.message());
    }
    let err = publish_entries(
        &r,
        vec![entry("192.0.2.1")],
        &"y".repeat(limits::REASON_BYTES + 1),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "reason: 4097 bytes, the limit is 4096");
    assert_eq!(r.coord.latest_version(), 0, "nothing was published");

    // A megabyte of garbage is quoted, not echoed: the error still fits a
    // header and is INVALID_ARGUMENT.
    let garbage = "\u{1b}[31m".to_string() + &"9".repeat(1 << 20);
    let err = r
        .publisher()
        .explain(pb::ExplainRequest {
            address: garbage.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
    assert!(err.message().contains("\\u{1b}[31m"), "{}", err.message());
    let err = r
        .publisher()
        .list(pb::ListRequest {
            page_token: garbage.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().len() < 300);
    let err = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key(&garbage)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().len() < 300);
}

fn import_chunk(source: &str, prefixes: &[String], end: bool) -> pb::ImportChunk {
    pb::ImportChunk {
        source: source.into(),
        reason: "feed".into(),
        entries: prefixes.iter().map(|p| entry(p)).collect(),
        ttl_seconds: 0,
        end,
    }
}

async fn metrics_rig(
    tag: &str,
    idle_seconds: u64,
    max_entries: usize,
) -> (Rig, Arc<c2wall_coordinator::metrics::Metrics>) {
    let m = Arc::new(c2wall_coordinator::metrics::Metrics::new().unwrap());
    let mm = m.clone();
    let r = rig_with(
        store_path(tag),
        move |s| {
            s.metrics = Some(mm);
            s.limits.import_idle_seconds = idle_seconds;
            s.limits.import_max_entries = max_entries;
        },
        1024,
    )
    .await;
    (r, m)
}

fn abandoned(m: &c2wall_coordinator::metrics::Metrics, why: &str) -> u64 {
    m.imports_abandoned.with_label_values(&[why]).get()
}

/// An import commits only once the client marks its end: a stream that stops
/// early (a client's cancel, a reset) or goes quiet commits nothing, and one
/// over the limits is refused. (Before, a cancelled stream of one chunk was
/// committed as the whole set and withdrew the source's other records.)
#[tokio::test]
async fn an_import_is_all_or_nothing() {
    let (r, m) = metrics_rig("import-end", 1, 1_000).await;
    let all = hosts(500);
    let o = r
        .publisher()
        .import(tokio_stream::iter(vec![
            import_chunk("partner", &all[..250], false),
            import_chunk("", &all[250..], true),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((o.added, o.withdrawn), (500, 0));
    let v = r.coord.latest_version();
    let digest = r.coord.digest();

    // The stream ends after the first 100 entries, without `end`.
    let e = r
        .publisher()
        .import(tokio_stream::iter(vec![import_chunk(
            "partner",
            &all[..100],
            false,
        )]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(e.message().contains("nothing committed"), "{}", e.message());
    assert_eq!(abandoned(&m, "unterminated"), 1);

    // A stream that sends one chunk and then nothing: abandoned after the
    // idle timeout (1 s here).
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(import_chunk("partner", &all[..100], false))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = r
        .publisher()
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(abandoned(&m, "idle"), 1);
    drop(tx);

    // Over the entry limit (1,000 here).
    let many = hosts(1_001);
    let e = r
        .publisher()
        .import(tokio_stream::iter(vec![import_chunk(
            "partner", &many, true,
        )]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("1000 entries"), "{}", e.message());
    assert_eq!(abandoned(&m, "too_large"), 1);

    // A TTL that would wrap past the end of time is refused.
    let mut c = import_chunk("partner", &all[..1], true);
    c.ttl_seconds = i64::MAX;
    let e = r
        .publisher()
        .import(tokio_stream::iter(vec![c]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("ttl_seconds"), "{}", e.message());
    assert_eq!(abandoned(&m, "invalid"), 1);

    assert_eq!(r.coord.latest_version(), v, "no version was made");
    assert_eq!(r.coord.digest(), digest, "the list is unchanged");
    assert_eq!(r.coord.source_count("partner"), 500);
}

/// History and audit replies stay readable whatever was stored: paged by
/// bytes (1,100 versions with 4 KB reasons are 4.5 MB, past a client's
/// 4 MiB), and a caller pages on with `before`.
#[tokio::test]
async fn history_and_audit_replies_are_paged_by_bytes() {
    let r = rig("pages").await;
    let reason = "w".repeat(limits::REASON_BYTES);
    for (i, h) in hosts(1_100).iter().enumerate() {
        publish_entries(&r, vec![entry(h)], &reason)
            .await
            .unwrap_or_else(|e| panic!("publish {i}: {e}"));
    }
    let mut seen = 0;
    let mut before = 0;
    loop {
        let page = r
            .publisher()
            .history(pb::HistoryRequest {
                before,
                limit: 10_000,
            })
            .await
            .expect("a page a client can read")
            .into_inner();
        if page.versions.is_empty() {
            break;
        }
        assert!(
            page.encoded_len() <= 1 << 20,
            "{} bytes",
            page.encoded_len()
        );
        seen += page.versions.len();
        before = page.versions.last().unwrap().version;
    }
    assert_eq!(seen, 1_100, "paging reaches every version");
    let page = r
        .publisher()
        .audit(pb::AuditRequest {
            before: 0,
            limit: 10_000,
        })
        .await
        .expect("an audit page a client can read")
        .into_inner();
    assert!(page.events.len() > 100 && page.events.len() < 1_100);
    assert!(page.encoded_len() <= 1 << 20);
}

/// A long commit (100,000 entries) does not hold readers for its store
/// write: explain and history answer while it runs (before, both waited
/// for the whole commit, 3.2 s of a 3.4 s confirmation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_commit_does_not_block_readers() {
    let r = rig("readers").await;
    let coord = r.coord.clone();
    let records: Vec<c2wall_model::Record> = hosts(100_000)
        .iter()
        .map(|h| c2wall_model::Record::try_from(&entry(h)).unwrap())
        .collect();
    let origin = c2wall_coordinator::core::Origin::new("analyst", "");
    let commit = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        coord
            .publish(records, vec![], &origin, "big", true)
            .unwrap();
        t.elapsed()
    });
    let coord = r.coord.clone();
    let readers = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut calls = 0;
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while coord.latest_version() == 0 && std::time::Instant::now() < until {
            let t = std::time::Instant::now();
            coord.explain("10.0.1.1".parse().unwrap());
            coord.history(0, 10).unwrap();
            worst = worst.max(t.elapsed());
            calls += 1;
        }
        (worst, calls)
    });
    let took = commit.join().unwrap();
    let (worst, calls) = readers.join().unwrap();
    eprintln!("commit {took:?}; {calls} reader calls during it, the slowest {worst:?}");
    assert!(calls > 1, "readers ran during the commit");
    assert!(
        worst < took / 2,
        "a reader waited {worst:?} of a {took:?} commit"
    );
}

/// Sends raw bytes as the request message of `path`.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = pb::PublishResponse;
    type Encoder = c2wall_coordinator::sync::PassThrough;
    type Decoder = tonic_prost::ProstDecoder<pb::PublishResponse>;
    fn encoder(&mut self) -> Self::Encoder {
        c2wall_coordinator::sync::PassThrough
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<pb::PublishRequest, pb::PublishResponse>::default().decoder()
    }
}

/// Bytes that are not the method's protobuf are the caller's error
/// (INVALID_ARGUMENT), not the server's (INTERNAL), for unary and streaming
/// calls alike.
#[tokio::test]
async fn bytes_that_are_not_protobuf_are_invalid_argument() {
    let r = rig("garbage").await;
    let garbage = bytes::Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\x0f\x01garbage");
    for path in [
        "/c2wall.v1.Publisher/Publish",
        "/c2wall.v1.Publisher/Import",
    ] {
        let mut g = tonic::client::Grpc::new(r.channel());
        g.ready().await.unwrap();
        let p = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        let e = if path.ends_with("Import") {
            g.client_streaming(
                Request::new(tokio_stream::iter(vec![garbage.clone()])),
                p,
                RawCodec,
            )
            .await
            .unwrap_err()
        } else {
            g.unary(Request::new(garbage.clone()), p, RawCodec)
                .await
                .unwrap_err()
        };
        assert_eq!(e.code(), Code::InvalidArgument, "{path}: {e:?}");
    }
    assert_eq!(r.coord.latest_version(), 0);
}
