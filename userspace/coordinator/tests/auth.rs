//! Every RPC checks the caller's token and role before any handler runs.

mod common;

use c2wall_coordinator::auth::{new_token, Role, Tokens, METHODS};
use c2wall_proto::v1 as pb;
use common::*;
use tonic::{codegen::http::uri::PathAndQuery, Code, Request};

/// Calls `Service/Method` with an empty message and `token`; the code it ends with.
async fn call(r: &Rig, service: &str, method: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(r.channel());
    grpc.ready().await.unwrap();
    let mut req = Request::new(());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = PathAndQuery::try_from(format!("/c2wall.v1.{service}/{method}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(req, path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_method_refuses_missing_unknown_and_wrong_role_tokens() {
    let dir = std::env::temp_dir().join(format!("c2wall-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = String::new();
    let mut token = std::collections::HashMap::new();
    for (role, name) in [
        (Role::Agent, "edge-1"),
        (Role::Reader, "noc"),
        (Role::Publisher, "feeds"),
        (Role::Admin, "alice"),
    ] {
        let (t, line) = new_token(role, name);
        lines.push_str(&line);
        lines.push('\n');
        token.insert(role, t);
    }
    std::fs::write(dir.join("tokens"), lines).unwrap();
    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new("c2wall_rpc_refused_total", "t"),
        &["reason"],
    )
    .unwrap();
    let tokens = Tokens::load(&dir.join("tokens"), refused.clone()).unwrap();
    let r = rig_with_tokens("auth", tokens).await;
    let refusal = [Code::Unauthenticated, Code::PermissionDenied];
    for (service, method) in METHODS {
        let needed = c2wall_coordinator::auth::needed(method);
        assert_eq!(
            call(&r, service, method, None).await,
            Code::Unauthenticated,
            "{method}"
        );
        assert_eq!(
            call(&r, service, method, Some("not-a-token")).await,
            Code::Unauthenticated,
            "{method}"
        );
        for role in [Role::Agent, Role::Reader, Role::Publisher, Role::Admin] {
            let code = call(&r, service, method, Some(&token[&role])).await;
            let allowed = role.allows(needed);
            if allowed {
                assert!(!refusal.contains(&code), "{role:?} on {method}: {code:?}");
            } else {
                assert_eq!(code, Code::PermissionDenied, "{role:?} on {method}");
            }
        }
    }
    assert!(refused.with_label_values(&["unauthenticated"]).get() >= 2 * METHODS.len() as u64);
    assert!(refused.with_label_values(&["permission_denied"]).get() > 0);

    // The actor recorded is the token's identity, whatever header is sent.
    let mut req = Request::new(pb::PublishRequest {
        upserts: vec![entry("192.0.2.1")],
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token[&Role::Publisher])
            .parse()
            .unwrap(),
    );
    req.metadata_mut()
        .insert("x-c2wall-actor", "someone-else".parse().unwrap());
    r.publisher().publish(req).await.unwrap();
    let mut req = Request::new(pb::AuditRequest::default());
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token[&Role::Reader]).parse().unwrap(),
    );
    let audit = r.publisher().audit(req).await.unwrap().into_inner().events;
    assert_eq!(audit[0].actor, "feeds");

    // Publishers are rate-limited per identity (burst 20, then 5 per second).
    let mut limited = 0;
    for _ in 0..40 {
        if call(&r, "Publisher", "Publish", Some(&token[&Role::Publisher])).await
            == Code::ResourceExhausted
        {
            limited += 1;
        }
    }
    assert!(limited >= 10, "{limited} of 40 rate-limited");
    std::fs::remove_dir_all(&dir).unwrap();
}
