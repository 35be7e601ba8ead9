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
    assert!(e.contains("exactly one of `url` and `path`"), "{e}");
    let e = check("name = \"x\"\npath = \"/f\"\nformat = \"plain\"\naction = \"block\"");
    assert!(e.contains("action `block`"), "{e}");
}
