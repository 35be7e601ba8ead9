//! Limiting what a downstream sees, in-process: a view coordinator follows
//! the centre with a sources filter and serves the ISP.

mod common;

use std::time::Duration;

use c2wall_coordinator::upstream::{Board, UpstreamConfig};
use c2wall_proto::v1 as pb;
use common::upstream::{coordinator, entry, follow, keys, publisher, serve, until, Dir};

/// The centre limits what a downstream sees by serving it through a view:
/// a coordinator of its own that follows the centre with `sources = [...]`
/// and signs with its own key; the ISP follows the view and never receives
/// the other sources' entries. Its records carry both hops.
#[tokio::test]
async fn a_view_coordinator_limits_what_a_downstream_sees() {
    let dir = Dir::new("up-view");
    let (seed, public) = keys();
    let centre = coordinator(&dir, "centre", &seed, usize::MAX);
    let (port, _stop) = serve(centre.clone(), 0).await;
    let mut p = publisher(port).await;
    for (prefix, source) in [("192.0.2.1", "feed-a"), ("192.0.2.2", "tlp-red")] {
        p.publish(pb::PublishRequest {
            upserts: vec![pb::Entry {
                source: source.into(),
                ..entry(prefix, "mirai")
            }],
            reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (view_seed, view_public) = keys();
    let view = coordinator(&dir, "view", &view_seed, usize::MAX);
    let _view_board = follow(&view, port, &public, &dir, "sources = [\"feed-a\"]\n");
    let (view_port, _view_stop) = serve(view.clone(), 0).await;
    let isp = coordinator(&dir, "isp", &keys().0, usize::MAX);
    let follow_view: UpstreamConfig = toml::from_str(&format!(
        "name = \"view\"\nurl = \"http://127.0.0.1:{view_port}\"\ninsecure = true\n\
         trust_keys = [\"{view_public}\"]\nid = \"isp-a\"\nstate_dir = \"{}\"\n",
        dir.0.display()
    ))
    .unwrap();
    let _board = Board::start(isp.clone(), vec![follow_view.check().unwrap()], &dir.0).unwrap();
    until("the view's set reaches the ISP", || {
        !isp.source_records("upstream:view").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = isp.source_records("upstream:view");
    assert_eq!(got.len(), 1, "only feed-a's entry: {got:?}");
    let r = &got[0];
    assert_eq!(r.entry.listed_prefix().unwrap().to_string(), "192.0.2.1/32");
    let hops: Vec<(&str, &str)> = r
        .chain
        .iter()
        .map(|h| (h.upstream.as_str(), h.source.as_str()))
        .collect();
    assert_eq!(hops, [("centre", "feed-a"), ("view", "upstream:centre")]);
}
