//! The feed runner against a feed server on loopback: conditional pulls,
//! replace-source imports, and pulls that must never touch the list.

mod common;

use std::sync::{Arc, Mutex};

use axum::{
    http::{HeaderMap, StatusCode},
    routing::get,
    Router,
};
use c2wall_coordinator::{
    feeds::{config::FeedConfig, runner::Pull, Runner},
    metrics::Metrics,
};
use c2wall_proto::v1 as pb;
use common::*;

/// What the feed server answers: body, ETag, or an HTTP error.
#[derive(Clone)]
struct Served {
    body: String,
    etag: String,
    status: u16,
}

async fn feed_server(state: Arc<Mutex<Served>>) -> String {
    let app = Router::new().route(
        "/drop.json",
        get(move |headers: HeaderMap| {
            let s = state.lock().unwrap().clone();
            async move {
                if s.status != 200 {
                    return (
                        StatusCode::from_u16(s.status).unwrap(),
                        HeaderMap::new(),
                        String::new(),
                    );
                }
                let mut h = HeaderMap::new();
                h.insert("etag", s.etag.parse().unwrap());
                if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(&s.etag) {
                    return (StatusCode::NOT_MODIFIED, h, String::new());
                }
                (StatusCode::OK, h, s.body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/drop.json")
}

fn ndjson(cidrs: &[&str], declared: Option<usize>) -> String {
    let mut s: String = cidrs
        .iter()
        .map(|c| format!("{{\"cidr\":\"{c}\",\"sblid\":\"SBL-{c}\",\"rir\":\"apnic\"}}\r\n"))
        .collect();
    if let Some(n) = declared {
        s.push_str(&format!(
            "{{\"type\":\"metadata\",\"timestamp\":1,\"size\":1,\"records\":{n},\"copyright\":\"(c)\"}}"
        ));
    }
    s
}

fn hosts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("192.0.2.{i}/32")).collect()
}

fn feed(url: &str) -> c2wall_coordinator::feeds::config::Feed {
    let cfg: FeedConfig = toml::from_str(&format!(
        r#"name = "spamhaus"
url = "{url}"
format = "spamhaus-json"
interval = 3600
action = "drop"
category = "drop-list""#
    ))
    .unwrap();
    cfg.check().unwrap()
}

async fn listed(r: &Rig) -> Vec<(String, String)> {
    let l = r
        .publisher()
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    l.entries
        .into_iter()
        .map(|e| (e.key.unwrap().prefix, e.source))
        .collect()
}

#[tokio::test]
async fn pulls_import_replace_and_refuse_without_touching_the_list() {
    let names = hosts(20);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let served = Arc::new(Mutex::new(Served {
        body: ndjson(&refs, Some(20)),
        etag: "\"v1\"".into(),
        status: 200,
    }));
    let url = feed_server(served.clone()).await;
    let metrics = Arc::new(Metrics::new().unwrap());
    let mut runner = None;
    let r = rig_with(
        store_path("feeds"),
        |svc| {
            let rn = Runner::new(svc.coord.clone(), vec![feed(&url)], metrics.clone());
            svc.feeds = Some(rn.board.clone());
            runner = Some(rn);
        },
        1024,
    )
    .await;
    let runner = runner.unwrap();

    // 1. First pull: 20 entries in one version.
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported")
    };
    assert_eq!((o.added, o.withdrawn), (20, 0));
    let v1 = o.version.unwrap().version;
    // An operator lists one of them too: it must survive the feed dropping it.
    r.publisher()
        .publish(pb::PublishRequest {
            upserts: vec![entry("192.0.2.0")],
            ..Default::default()
        })
        .await
        .unwrap();

    // 2. Same ETag: not modified, no version.
    assert_eq!(runner.pull(0).await, Pull::NotModified);

    // 3. The feed drops two entries and adds one: one version, withdrawn for
    //    this source only.
    let mut next: Vec<&str> = refs[2..].to_vec();
    next.push("198.51.100.0/24");
    *served.lock().unwrap() = Served {
        body: ndjson(&next, Some(19)),
        etag: "\"v2\"".into(),
        status: 200,
    };
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported")
    };
    assert_eq!(
        (o.added, o.updated, o.withdrawn, o.unchanged),
        (1, 0, 2, 18)
    );
    assert_eq!(o.version.unwrap().version, v1 + 2);
    let l = listed(&r).await;
    assert!(
        l.contains(&("192.0.2.0/32".into(), "feed-a".into())),
        "operator's record kept"
    );
    assert!(!l
        .iter()
        .any(|(p, s)| p == "192.0.2.0/32" && s == "spamhaus"));
    assert!(
        !l.iter().any(|(p, _)| p == "192.0.2.1/32"),
        "gone with the feed"
    );
    let before = listed(&r).await;

    // 4. Truncated (no metadata record), collapsed, broken, HTTP error: each
    //    refused or failed, and the list is exactly as it was.
    let cases = [
        (ndjson(&next, None), 200, "truncated"),
        (ndjson(&next[..3], Some(3)), 200, "collapsed"),
        (
            format!("{}garbage\n", ndjson(&next[..2], None)),
            200,
            "truncated",
        ),
        (String::new(), 503, "HTTP 503"),
    ];
    for (i, (body, status, why)) in cases.into_iter().enumerate() {
        *served.lock().unwrap() = Served {
            body,
            etag: format!("\"bad{i}\""),
            status,
        };
        let p = runner.pull(0).await;
        let msg = match &p {
            Pull::Refused(m) | Pull::Failed(m) => m.clone(),
            other => panic!("case {i}: {other:?}"),
        };
        assert!(msg.contains(why), "case {i}: {msg}");
        assert_eq!(listed(&r).await, before, "case {i}: the list is untouched");
    }

    // A download over the feed's size cap is not read to the end.
    *served.lock().unwrap() = Served {
        body: ndjson(&next, Some(19)),
        etag: "\"big\"".into(),
        status: 200,
    };
    let mut small = feed(&url);
    small.max_bytes = 256;
    let capped = Runner::new(
        r.coord.clone(),
        vec![small],
        Arc::new(Metrics::new().unwrap()),
    );
    let p = capped.pull(0).await;
    assert!(
        matches!(&p, Pull::Failed(m) if m.contains("larger than max_bytes 256")),
        "{p:?}"
    );
    assert_eq!(listed(&r).await, before);

    // `c2wall feed list` and the metrics say so.
    let state = r
        .publisher()
        .feeds(pb::FeedsRequest {})
        .await
        .unwrap()
        .into_inner();
    let s = &state.feeds[0];
    assert_eq!(
        (s.name.as_str(), s.format.as_str()),
        ("spamhaus", "spamhaus-json")
    );
    assert_eq!((s.entries, s.failures, s.last_version), (19, 4, v1 + 2));
    assert!(s.last_error.contains("503"), "{}", s.last_error);
    assert!(s.last_success > 0 && s.last_attempt >= s.last_success);
    let text = metrics.render();
    assert!(
        text.contains("c2wall_feed_pull_failures_total{feed=\"spamhaus\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("c2wall_feed_entries{feed=\"spamhaus\"} 19"),
        "{text}"
    );
    assert!(text.contains("c2wall_feed_pulls_total{feed=\"spamhaus\",result=\"not_modified\"} 1"));
}

#[test]
fn feed_config_errors_name_the_feed_and_the_key() {
    let check = |t: &str| {
        toml::from_str::<FeedConfig>(t)
            .unwrap()
            .check()
            .unwrap_err()
    };
    let e = check("name = \"sh\"\nurl = \"https://x\"\nformat = \"spamhaus-drop\"\ninterval = 60");
    assert!(
        e.contains("feed sh: interval 60 s is below the 3600 s"),
        "{e}"
    );
    let e = check("name = \"x\"\nurl = \"https://x\"\nformat = \"csv\"");
    assert!(e.contains("unknown feed format `csv`"), "{e}");
    let e = check("name = \"x\"\nformat = \"plain\"");
    assert!(
        e.contains("exactly one of `url`, `path` and `taxii`"),
        "{e}"
    );
    let e = check("name = \"x\"\ntaxii = \"https://t/objects/\"\nformat = \"plain\"");
    assert!(e.contains("a taxii feed has format `stix`"), "{e}");
    let e = check("name = \"x\"\npath = \"/f\"\nformat = \"plain\"\naction = \"block\"");
    assert!(e.contains("action `block`"), "{e}");
}

/// A TAXII 2.1 collection: objects with the time they were added; pages of
/// two with `more` / `next`. Like the OASIS reference server it fails a
/// request without `limit`, and with `auth` set it wants that Authorization.
async fn taxii_server(objects: Arc<Mutex<Vec<(i64, String)>>>) -> String {
    taxii_server_with(objects, None).await
}

async fn taxii_server_with(
    objects: Arc<Mutex<Vec<(i64, String)>>>,
    auth: Option<&'static str>,
) -> String {
    let app = Router::new().route(
        "/api/collections/c2/objects/",
        get(move |uri: axum::http::Uri, headers: HeaderMap| {
            let all = objects.lock().unwrap().clone();
            let authorized = auth.is_none_or(|want| {
                headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want)
            });
            let q: std::collections::HashMap<String, String> = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            async move {
                if !authorized {
                    return (StatusCode::UNAUTHORIZED, HeaderMap::new(), String::new());
                }
                if !q.contains_key("limit") {
                    return (StatusCode::BAD_REQUEST, HeaderMap::new(), "no limit".into());
                }
                let after: i64 = q.get("added_after").map_or(0, |a| a.parse().unwrap());
                let from: usize = q.get("next").map_or(0, |n| n.parse().unwrap());
                let new: Vec<&(i64, String)> = all.iter().filter(|(t, _)| *t > after).collect();
                let page: Vec<&str> = new
                    .iter()
                    .skip(from)
                    .take(2)
                    .map(|(_, o)| o.as_str())
                    .collect();
                let more = from + 2 < new.len();
                let mut h = HeaderMap::new();
                if let Some((t, _)) = new.last() {
                    h.insert("x-taxii-date-added-last", t.to_string().parse().unwrap());
                }
                let body = format!(
                    r#"{{"more":{more},"next":"{}","objects":[{}]}}"#,
                    from + 2,
                    page.join(",")
                );
                (StatusCode::OK, h, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/api/collections/c2/objects/")
}

fn indicator(id: u32, addr: &str, modified: &str, revoked: bool) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{id}","created":"2026-01-01T00:00:00Z","modified":"{modified}","pattern":"[ipv4-addr:value = '{addr}']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","revoked":{revoked}}}"#
    )
}

#[tokio::test]
async fn taxii_polls_follow_pages_and_apply_only_what_was_added() {
    let objects = Arc::new(Mutex::new(vec![
        (1, indicator(1, "192.0.2.1", "2026-01-01T00:00:00Z", false)),
        (2, indicator(2, "192.0.2.2", "2026-01-01T00:00:00Z", false)),
        (3, indicator(3, "192.0.2.3", "2026-01-01T00:00:00Z", false)),
        (
            4,
            r#"{"type":"malware","id":"malware--1","name":"Mirai","is_family":true}"#.into(),
        ),
        (5, indicator(5, "192.0.2.5", "2026-01-01T00:00:00Z", false)),
    ]));
    let url = taxii_server(objects.clone()).await;
    let r = rig("taxii").await;
    let cfg: FeedConfig = toml::from_str(&format!(
        "name = \"partner-taxii\"\ntaxii = \"{url}\"\nformat = \"stix\"\ninterval = 60"
    ))
    .unwrap();
    let runner = Runner::new(
        r.coord.clone(),
        vec![cfg.check().unwrap()],
        Arc::new(Metrics::new().unwrap()),
    );
    // Five objects in three pages: four indicators.
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported")
    };
    assert_eq!(o.added, 4);
    // Nothing added since: not modified.
    assert_eq!(runner.pull(0).await, Pull::NotModified);
    // Added since: a new indicator, and a new version of #2 that revokes it.
    objects.lock().unwrap().extend([
        (6, indicator(6, "192.0.2.6", "2026-02-01T00:00:00Z", false)),
        (7, indicator(2, "192.0.2.2", "2026-02-01T00:00:00Z", true)),
    ]);
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported")
    };
    assert_eq!((o.added, o.withdrawn, o.unchanged), (1, 1, 3));
    let l = listed(&r).await;
    let got: Vec<&str> = l.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "192.0.2.1/32",
            "192.0.2.3/32",
            "192.0.2.5/32",
            "192.0.2.6/32"
        ]
    );
}

fn chunk(source: &str, prefixes: &[&str], ttl: i64) -> pb::ImportChunk {
    pb::ImportChunk {
        source: source.into(),
        reason: "test".into(),
        entries: prefixes.iter().map(|p| entry(p)).collect(),
        ttl_seconds: ttl,
        end: false,
    }
}

#[tokio::test]
async fn the_import_rpc_replaces_one_source_across_chunks() {
    let r = rig("import").await;
    let import = |mut chunks: Vec<pb::ImportChunk>| {
        let mut p = r.publisher();
        if let Some(last) = chunks.last_mut() {
            last.end = true;
        }
        async move {
            p.import(tokio_stream::iter(chunks))
                .await
                .map(|r| r.into_inner())
        }
    };
    // Two chunks, a TTL: entries expire an hour after the import.
    let o = import(vec![
        chunk("partner", &["192.0.2.1", "192.0.2.2"], 3600),
        chunk("", &["192.0.2.3"], 3600),
    ])
    .await
    .unwrap();
    assert_eq!((o.added, o.withdrawn), (3, 0));
    let l = r
        .publisher()
        .get(pb::GetRequest {
            key: Some(key("192.0.2.3")),
        })
        .await
        .unwrap()
        .into_inner();
    let until = l.records[0].valid_until;
    assert!((until - c2wall_coordinator::core::now() - 3600).abs() <= 2);
    // The same set again: nothing changes, the TTL is not renewed yet.
    let o = import(vec![chunk(
        "partner",
        &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        3600,
    )])
    .await
    .unwrap();
    assert_eq!((o.version, o.unchanged), (0, 3));
    // Errors name the entry by its index across chunks, and nothing applies.
    let e = import(vec![
        chunk("partner", &["192.0.2.1"], 0),
        chunk("", &["192.0.2.9/24"], 0),
    ])
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().starts_with("entries[1].key.prefix"),
        "{}",
        e.message()
    );
    let e = import(vec![chunk("", &["192.0.2.1"], 0)])
        .await
        .unwrap_err();
    assert!(e.message().starts_with("source"), "{}", e.message());
    let e = import(vec![chunk("partner", &["192.0.2.1", "192.0.2.1"], 0)])
        .await
        .unwrap_err();
    assert!(
        e.message().contains("is also entries[0]"),
        "{}",
        e.message()
    );
    assert_eq!(listed(&r).await.len(), 3, "refused imports changed nothing");
}

#[test]
fn the_example_config_in_deploy_is_valid() {
    use c2wall_coordinator::config::{CoordArgs, Settings};
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/coordinator.toml");
    let s = Settings::resolve(&CoordArgs {
        config: Some(path),
        ..Default::default()
    })
    .unwrap();
    let names: Vec<&str> = s.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["spamhaus-drop", "feodo"]);
    assert_eq!(s.feeds[0].policy.min_len_v4, 8);
    assert_eq!(s.metrics_addr.port(), 9465);
    assert_eq!(
        s.tls.client_ca.as_deref(),
        Some(std::path::Path::new("/etc/c2wall/pki/ca.crt"))
    );
    assert!(!s.tls.insecure);
    assert_eq!(s.publish_limit, (5.0, 20.0));
    assert_eq!(s.publishers["abusech-importer"].sources[0], "feodo");
    // The [limits] example states the defaults.
    assert_eq!(s.limits, c2wall_coordinator::limits::Limits::default());
}

/// Credentials come from files and never show: not in `c2wall feed list`,
/// not in errors, not in the version's reason (and so not in the audit log).
/// The newest version of a STIX object is found by time, not text, and a
/// TAXII page size goes with every request.
#[tokio::test]
async fn feed_secrets_never_show_and_stix_versions_compare_as_times() {
    let objects = Arc::new(Mutex::new(vec![
        (1, indicator(1, "192.0.2.1", "2026-03-01T10:00:05Z", false)),
        (2, indicator(2, "192.0.2.2", "2026-03-01T10:00:05Z", false)),
        (3, indicator(3, "192.0.2.3", "2026-03-01T10:00:05Z", false)),
    ]));
    // "Basic " + base64("centre:s3cret-pw")
    let url = taxii_server_with(objects.clone(), Some("Basic Y2VudHJlOnMzY3JldC1wdw==")).await;
    let r = rig("secrets").await;
    let dir = std::env::temp_dir().join(format!("c2wall-feed-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("password");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let cfg: FeedConfig = toml::from_str(&format!(
        "name = \"partner\"\ntaxii = \"{url}\"\nformat = \"stix\"\ninterval = 60\n\
         username = \"centre\"\npassword_file = \"{}\"\npage_size = 2",
        pw.display()
    ))
    .unwrap();
    let runner = Runner::new(
        r.coord.clone(),
        vec![cfg.check().unwrap()],
        Arc::new(Metrics::new().unwrap()),
    );
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported with basic auth and a page size")
    };
    assert_eq!(o.added, 3);
    // A revocation stamped 250 ms after the whole-second version wins.
    objects.lock().unwrap().push((
        4,
        indicator(2, "192.0.2.2", "2026-03-01T10:00:05.250Z", true),
    ));
    let Pull::Imported(o) = runner.pull(0).await else {
        panic!("imported")
    };
    assert_eq!(o.withdrawn, 1, "the revocation is the newer version");

    // A URL with user:password@ and a failing server: the password shows
    // nowhere.
    let served = Arc::new(Mutex::new(Served {
        body: String::new(),
        etag: "\"1\"".into(),
        status: 503,
    }));
    let plain = feed_server(served.clone()).await;
    let leaky = plain.replace("http://", "http://user:hunter2@");
    let runner = Runner::new(
        r.coord.clone(),
        vec![feed(&leaky)],
        Arc::new(Metrics::new().unwrap()),
    );
    assert!(matches!(runner.pull(0).await, Pull::Failed(_)));
    // What `c2wall feed list` is served.
    let shown = format!("{:?}", runner.board.states.lock().unwrap());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("last_error: \"http://127.0.0.1"), "{shown}");
    served.lock().unwrap().status = 200;
    served.lock().unwrap().body = ndjson(&["203.0.113.0/24"], Some(1));
    assert!(matches!(runner.pull(0).await, Pull::Imported(_)));
    let history = r
        .publisher()
        .history(pb::HistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    let reasons = format!("{history:?}");
    assert!(reasons.contains("feed spamhaus"), "{reasons}");
    assert!(!reasons.contains("hunter2"), "{reasons}");
    let audit = format!("{:?}", r.coord.audit_log(0, 100).unwrap());
    assert!(
        !audit.contains("hunter2") && !audit.contains("s3cret"),
        "{audit}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
