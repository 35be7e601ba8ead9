//! The coordinator over TLS with client certificates, as deployed: every
//! method refuses a caller without a certificate, a certificate from another
//! CA (in the handshake, logged and counted) and a certificate of the wrong
//! role; a publisher stays within its sources; an agent speaks only as
//! itself; the audit log names the certificate's identity.

mod common;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::Arc};

use c2wall_coordinator::{
    auth::{needed, AuthLayer, Role, Tokens, METHODS},
    core::Coordinator,
    service::Service,
    store::sqlite::SqliteStore,
    sync::AgentSyncServer,
};
use c2wall_proto::v1::{self as pb, publisher_client::PublisherClient};
use c2wall_tls::{ca, CertIdentity, ClientTls, ServerTls};
use common::{entry, key};
use tonic::{codegen::http::uri::PathAndQuery, transport::Channel, Code, Request};

struct Tls {
    dir: PathBuf,
    addr: SocketAddr,
    refused: prometheus::IntCounterVec,
    server: ServerTls,
    settings: c2wall_tls::serve::Settings,
}

fn issue(dir: &std::path::Path, role: &str, name: &str) {
    let ips = if role == "coordinator" {
        vec!["127.0.0.1".parse().unwrap()]
    } else {
        vec![]
    };
    ca::issue(
        dir,
        &ca::Request {
            identity: CertIdentity::new(role, name).unwrap(),
            dns: vec![],
            ips,
            days: 1,
        },
    )
    .unwrap();
}

/// A CA with the coordinator's certificate and one per role; another CA
/// with an admin certificate the coordinator must not accept; the
/// coordinator serving on loopback with the CA as client CA.
async fn start(tag: &str) -> Tls {
    start_with(
        tag,
        c2wall_tls::serve::Limits {
            max_connections: 10_000,
            per_peer: 10_000,
            unidentified_per_peer: 10_000,
            idle: std::time::Duration::from_secs(300),
        },
    )
    .await
}

async fn start_with(tag: &str, limits: c2wall_tls::serve::Limits) -> Tls {
    let dir = std::env::temp_dir().join(format!("c2wall-mtls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ca::init(&dir, 1).unwrap();
    issue(&dir, "coordinator", "coord");
    for (role, name) in [
        ("agent", "edge-1"),
        ("reader", "noc"),
        ("publisher", "feeds"),
        ("publisher", "pub"),
        ("admin", "alice"),
    ] {
        issue(&dir, role, name);
    }
    let other = dir.join("other");
    ca::init(&other, 1).unwrap();
    issue(&other, "admin", "mallory");

    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new("c2wall_rpc_refused_total", "t"),
        &["reason"],
    )
    .unwrap();
    let server = ServerTls {
        cert: Some(dir.join("coord.crt")),
        key: Some(dir.join("coord.key")),
        client_ca: Some(dir.join("ca.crt")),
        crl: None,
        insecure: false,
    };
    let settings = c2wall_tls::serve::Settings::new(server.config().unwrap().unwrap());
    let coord = Coordinator::open(
        Box::new(SqliteStore::open(&dir.join("store.db")).unwrap()),
        64,
    )
    .unwrap();
    let mut svc = Service::new(coord);
    svc.publishers = Arc::new(HashMap::from([(
        "feeds".to_string(),
        vec!["feodo".to_string(), "operator:*".to_string()],
    )]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = refused.clone();
    let incoming = c2wall_tls::serve::incoming(
        listener,
        settings.clone(),
        limits,
        Arc::new(move |_, why: c2wall_tls::serve::Refusal, _: &str| {
            r.with_label_values(&[why.label()]).inc()
        }),
    );
    let mut tokens = Tokens::empty(refused.clone());
    tokens.burst = 1000.0;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(AuthLayer(Some(tokens)))
            .add_service(pb::publisher_server::PublisherServer::new(svc.clone()))
            .add_service(AgentSyncServer::new(svc))
            .serve_with_incoming(incoming),
    );
    Tls {
        dir,
        addr,
        refused,
        server,
        settings,
    }
}

impl Tls {
    /// A channel presenting `cert` (a file stem under `dir`; None: none).
    async fn channel(&self, cert: Option<&str>) -> Option<Channel> {
        let tls = ClientTls {
            ca: Some(self.dir.join("ca.crt")),
            cert: cert.map(|c| self.dir.join(format!("{c}.crt"))),
            key: cert.map(|c| self.dir.join(format!("{c}.key"))),
            insecure: false,
        };
        tls.endpoint(&format!("https://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .ok()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Calls `Service/Method` with an empty message; the code it ends with (a
/// connection that fails is Unavailable).
async fn call(channel: Option<Channel>, service: &str, method: &str) -> Code {
    let Some(channel) = channel else {
        return Code::Unavailable;
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let path = PathAndQuery::try_from(format!("/c2wall.v1.{service}/{method}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(Request::new(()), path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_method_checks_the_client_certificate_and_its_role() {
    let t = start("methods").await;
    // `pub` is a publisher without source limits: a limited one is refused
    // by the handler for the empty messages sent here.
    let roles = [
        (Role::Agent, "edge-1"),
        (Role::Reader, "noc"),
        (Role::Publisher, "pub"),
        (Role::Admin, "alice"),
    ];
    let refusal = [Code::Unauthenticated, Code::PermissionDenied];
    for (service, method) in METHODS {
        let need = needed(method);
        // No certificate (and no token): unauthenticated.
        assert_eq!(
            call(t.channel(None).await, service, method).await,
            Code::Unauthenticated,
            "{method} without a certificate"
        );
        // Another CA's admin certificate: refused in the handshake, so no
        // handler (and not even the auth layer) sees the call.
        let code = call(t.channel(Some("other/mallory")).await, service, method).await;
        assert!(
            !refusal.contains(&code) && code != Code::Ok,
            "{method} with a foreign certificate: {code:?}"
        );
        // The coordinator's own certificate is a server certificate: not
        // accepted as a client's.
        let code = call(t.channel(Some("coord")).await, service, method).await;
        assert!(
            code != Code::Ok && !refusal.contains(&code),
            "{method} with the server certificate: {code:?}"
        );
        for (role, name) in roles {
            let code = call(t.channel(Some(name)).await, service, method).await;
            let allowed = role.allows(need);
            if allowed {
                assert!(!refusal.contains(&code), "{role:?} on {method}: {code:?}");
            } else {
                assert_eq!(code, Code::PermissionDenied, "{role:?} on {method}");
            }
        }
    }
    let n = METHODS.len() as u64;
    assert_eq!(
        t.refused.with_label_values(&["unauthenticated"]).get(),
        n,
        "one unauthenticated refusal per method"
    );
    assert!(t.refused.with_label_values(&["permission_denied"]).get() >= n);
    assert!(
        t.refused.with_label_values(&["tls_handshake"]).get() >= 2 * n,
        "foreign and server certificates are counted: {}",
        t.refused.with_label_values(&["tls_handshake"]).get()
    );
}

fn sourced(prefix: &str, source: &str) -> pb::Entry {
    pb::Entry {
        source: source.into(),
        ..entry(prefix)
    }
}

#[tokio::test]
async fn publishers_stay_within_their_sources_and_the_audit_names_the_certificate() {
    let t = start("sources").await;
    let mut feeds = PublisherClient::new(t.channel(Some("feeds")).await.unwrap());
    let publish = |upserts: Vec<pb::Entry>, withdrawals: Vec<pb::Withdrawal>| {
        let mut req = Request::new(pb::PublishRequest {
            expedite: false,
            upserts,
            withdrawals,
            reason: "t".into(),
        });
        // A forged actor header is ignored: the certificate names the caller.
        req.metadata_mut()
            .insert("x-c2wall-actor", "someone-else".parse().unwrap());
        req
    };
    let e = feeds
        .publish(publish(vec![sourced("192.0.2.1", "spamhaus")], vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("upserts[0].source") && e.message().contains("`spamhaus`"),
        "{}",
        e.message()
    );
    feeds
        .publish(publish(
            vec![
                sourced("192.0.2.1", "feodo"),
                sourced("192.0.2.2", "operator:feeds"),
            ],
            vec![],
        ))
        .await
        .unwrap();
    // `operator:*` is only its own operator source: another operator's
    // records (here the admin's) are out of reach, to replace or withdraw.
    let e = feeds
        .publish(publish(
            vec![sourced("192.0.2.2", "operator:alice")],
            vec![],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("`operator:alice`"), "{}", e.message());
    let e = feeds
        .publish(publish(
            vec![],
            vec![pb::Withdrawal {
                key: Some(key("192.0.2.2")),
                source: "operator:alice".into(),
            }],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    // A withdrawal of every source's record is beyond a limited publisher.
    let e = feeds
        .publish(publish(
            vec![],
            vec![pb::Withdrawal {
                key: Some(key("192.0.2.1")),
                source: String::new(),
            }],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    // An import under another source is refused too.
    let chunk = pb::ImportChunk {
        source: "spamhaus".into(),
        entries: vec![sourced("192.0.2.9", "spamhaus")],
        end: true,
        ..Default::default()
    };
    let e = feeds
        .import(tokio_stream::iter(vec![chunk]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());

    let mut alice = PublisherClient::new(t.channel(Some("alice")).await.unwrap());
    alice
        .publish(publish(vec![sourced("192.0.2.3", "spamhaus")], vec![]))
        .await
        .expect("an admin publishes any source");
    let audit = alice
        .audit(pb::AuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let actors: Vec<&str> = audit.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["alice", "feeds"]);
}

#[tokio::test]
async fn an_agent_subscribes_and_reports_only_as_itself() {
    let t = start("agent").await;
    let ch = t.channel(Some("edge-1")).await.unwrap();
    let mut agent = pb::agent_sync_client::AgentSyncClient::new(ch);
    let e = agent
        .subscribe(pb::SubscribeRequest {
            agent_id: "edge-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("edge-1"), "{}", e.message());
    let e = agent
        .report_status(pb::AgentStatus {
            agent_id: "edge-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut s = agent
        .subscribe(pb::SubscribeRequest {
            agent_id: "edge-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.message().await.unwrap().is_some(), "a snapshot arrives");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_once_the_settings_are_reloaded() {
    let t = start("revoke").await;
    let list = |ch| call(ch, "Publisher", "List");
    assert_eq!(list(t.channel(Some("noc")).await).await, Code::Ok);
    let crl = ca::revoke(&t.dir, "noc").unwrap();
    // What SIGHUP does in the coordinator: the settings are read again.
    let with_crl = ServerTls {
        crl: Some(crl),
        ..t.server.clone()
    };
    t.settings.replace(with_crl.config().unwrap().unwrap());
    let before = t.refused.with_label_values(&["tls_handshake"]).get();
    let code = list(t.channel(Some("noc")).await).await;
    assert!(
        code != Code::Ok && code != Code::PermissionDenied && code != Code::Unauthenticated,
        "a revoked certificate fails the handshake: {code:?}"
    );
    assert!(t.refused.with_label_values(&["tls_handshake"]).get() > before);
    assert_eq!(
        list(t.channel(Some("alice")).await).await,
        Code::Ok,
        "others are unaffected"
    );
}

/// Connections cannot exhaust the coordinator: past the per-address limit
/// (tighter without a client certificate) they are closed at once, and a
/// connection that moves no byte for the idle timeout is closed; both are
/// counted. (Before, 1,006 connections that completed TLS and sent nothing
/// held the process's descriptors until an admin's publish timed out.)
#[tokio::test]
async fn idle_and_excess_connections_are_closed_and_counted() {
    let t = start_with(
        "limits",
        c2wall_tls::serve::Limits {
            max_connections: 100,
            per_peer: 5,
            unidentified_per_peer: 2,
            idle: std::time::Duration::from_secs(1),
        },
    )
    .await;
    let count = |why: &str| t.refused.with_label_values(&[why]).get();
    // Served: the call reaches the coordinator (which may refuse the role).
    let served = |ch: Option<Channel>| async move {
        let Some(ch) = ch else { return false };
        match PublisherClient::new(ch)
            .protected(pb::ProtectedRequest {})
            .await
        {
            Ok(_) => true,
            Err(s) => matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied),
        }
    };
    // Two connections without a certificate are served; the third is not.
    let (a, b) = (t.channel(None).await, t.channel(None).await);
    assert!(served(a.clone()).await && served(b.clone()).await);
    assert!(
        !served(t.channel(None).await).await,
        "third unidentified refused"
    );
    assert_eq!(count("connection_limit"), 1);
    // Identified callers still get in, up to the per-address limit (5 in
    // all, two of them taken).
    let mut held = Vec::new();
    for _ in 0..3 {
        let ch = t.channel(Some("alice")).await;
        assert!(served(ch.clone()).await, "identified");
        held.push(ch);
    }
    assert!(
        !served(t.channel(Some("alice")).await).await,
        "sixth refused"
    );
    assert_eq!(count("connection_limit"), 2);
    // Nothing moves on any of them: closed after the idle timeout, and their
    // places are free again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        count("idle_connection") >= 5,
        "{}",
        count("idle_connection")
    );
    drop((a, b, held));
    assert!(
        served(t.channel(Some("alice")).await).await,
        "a place is free again"
    );
}
