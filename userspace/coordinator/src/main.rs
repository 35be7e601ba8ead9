//! `c2wall-coordinator`: the coordination centre's service.

use std::{sync::Arc, time::Duration};

use axum::{routing::get, Router};

use anyhow::{Context, Result};
use c2wall_coordinator::sync::AgentSyncServer;
use c2wall_coordinator::{
    config::{CoordArgs, Settings},
    core::Coordinator,
    feeds::Runner,
    metrics::{Metrics, RpcTimer, StateCollector},
    service::Service,
    store::Location,
};
use c2wall_proto::v1::publisher_server::PublisherServer;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "c2wall-coordinator",
    version,
    about = "Serve the centre's versioned C&C blocklist to edge agents over gRPC.",
    long_about = "Serve the centre's versioned C&C blocklist to edge agents over gRPC.\n\n\
        Operators and feed importers publish and withdraw entries (`c2wall publish ...`); every \
        change is one durable version with a digest of the whole set. Agents subscribe, get a \
        snapshot or the deltas they missed, then live deltas. Expired entries leave the set in a \
        new version. SIGTERM stops accepting work and ends agent streams after a short drain.\n\n\
        gRPC is served over TLS (--tls-cert, --tls-key; plaintext only with --insecure). \
        Callers are identified by a client certificate naming spiffe://c2wall/ROLE/NAME \
        (--tls-client-ca; `c2wall ca` makes a development CA) or by a bearer token \
        (--tokens); each method needs a role (agent, downstream, reader, publisher, admin).",
    after_help = "Examples:\n  \
        c2wall ca init --dir /etc/c2wall/pki\n  \
        c2wall ca issue --dir /etc/c2wall/pki --role coordinator --name coord --ip 192.0.2.10\n  \
        c2wall-coordinator --listen 0.0.0.0:50051 --store /var/lib/c2wall/coordinator.db \\\n    \
        --tls-cert /etc/c2wall/pki/coord.crt --tls-key /etc/c2wall/pki/coord.key \\\n    \
        --tls-client-ca /etc/c2wall/pki/ca.crt --signing-key /etc/c2wall/signing.key"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    args: CoordArgs,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Create a version-signing key (mode 0600) and print its public key,
    /// which agents are given with --trust-key.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Make a bearer token: prints the token (give it to the caller) and the
    /// line to add to the tokens file (the token itself is not stored).
    Token {
        #[arg(long, value_parser = ["agent", "downstream", "reader", "publisher", "admin"])]
        role: String,
        /// Who the token is: recorded in the audit log as the actor.
        #[arg(long)]
        name: String,
    },
    /// Create a TSIG key (hmac-sha256, mode 0600) for RPZ zone transfers,
    /// in BIND's key-file format: `[rpz] tsig_key_file` names it, and the
    /// same file works with `dig -k`, BIND's `include` and Knot.
    TsigKeygen {
        /// The key's name, as secondaries will name it (e.g. c2wall-rpz).
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

/// SIGHUP: re-reads the certificate, key, client CA and CRL for new
/// connections (a renewal or a revocation without a restart). A file that no
/// longer loads keeps the settings in use.
fn reload_tls(tls: &c2wall_tls::ServerTls, settings: Option<&c2wall_tls::serve::Settings>) {
    let Some(settings) = settings else {
        tracing::info!("SIGHUP: no TLS settings to reload (--insecure)");
        return;
    };
    match tls.config() {
        Ok(Some(cfg)) => {
            settings.replace(cfg);
            tracing::info!("SIGHUP: TLS settings reloaded; new connections use them");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: TLS settings not reloaded, the old ones stay")
        }
    }
}

/// How long open streams get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

fn main() -> std::process::ExitCode {
    c2wall_coordinator::alloc::cap_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Some(Cmd::Keygen { out }) => c2wall_coordinator::keyfiles::signing_key(out)
            .map(|public| println!("{public}"))
            .map_err(Into::into),
        Some(Cmd::Token { role, name }) => {
            let role = c2wall_coordinator::auth::Role::parse(role).expect("clap checked");
            let (token, line) = c2wall_coordinator::auth::new_token(role, name);
            println!("token: {token}");
            println!("tokens file line: {line}");
            Ok(())
        }
        Some(Cmd::TsigKeygen { name, out }) => c2wall_coordinator::keyfiles::tsig_key(name, out)
            .map(|key| println!("wrote TSIG key `{}` to {}", key.name, out.display()))
            .map_err(Into::into),
        None => run(cli.args),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("c2wall-coordinator: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Raises the soft limit on open descriptors to the hard one: each agent
/// holds a connection, and the default soft limit (1,024) is far below what
/// a fleet needs (the connection limits keep within it).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            let before = r.rlim_cur;
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                tracing::info!(
                    from = before,
                    to = r.rlim_max,
                    "raised the open-files limit"
                );
            }
        }
    }
}

fn run(args: CoordArgs) -> Result<()> {
    let s = Settings::resolve(&args)?;
    raise_nofile();
    let store = s.store.open()?;
    let integrity = c2wall_coordinator::integrity::Integrity {
        // A file beside a SQLite store; replicas share their database, whose
        // own durability stands in for it.
        highwater: match &s.store {
            Location::Sqlite(p) => Some(c2wall_coordinator::highwater::path_for(p)),
            Location::Postgres(_) => None,
        },
        recover: s.recover_store.clone(),
    };
    let coord = Coordinator::open_checked(store, s.live_buffer, &integrity)?;
    coord.set_guard_config(s.guards.clone());
    match &s.signing_key {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the signing key {}", path.display()))?;
            let signer = c2wall_model::sign::Signer32::from_seed(&bytes)
                .map_err(|e| anyhow::anyhow!("signing key {}: {e}", path.display()))?;
            tracing::info!(public_key = %signer.public_hex(), "signing versions");
            coord.set_signer(Some(signer));
        }
        None => tracing::warn!("no signing key: versions are unsigned, agents cannot verify them"),
    }
    tracing::info!(
        version = coord.latest_version(),
        lineage = %c2wall_model::sign::hex(&coord.lineage().0),
        store = %s.store.describe(),
        "store open and checked"
    );
    let metrics = Arc::new(Metrics::new()?);
    metrics.version.set(coord.latest_version() as i64);
    metrics.register(Box::new(StateCollector::new(coord.clone())?))?;
    let timer = RpcTimer::new()?;
    metrics.register(Box::new(timer.0.clone()))?;
    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "c2wall_rpc_refused_total",
            "Calls refused before reaching a handler: unauthenticated, permission_denied, rate_limited; and connections refused in the TLS handshake: tls_handshake.",
        ),
        &["reason"],
    )?;
    metrics.register(Box::new(refused.clone()))?;
    // Every reason shows from the start (as 0), so rates and alerts have data.
    for reason in [
        "unauthenticated",
        "permission_denied",
        "rate_limited",
        "tls_handshake",
        "connection_limit",
        "idle_connection",
    ] {
        refused.with_label_values(&[reason]);
    }
    let tls = s.tls.config()?;
    let refused_tls = refused.clone();
    match &tls {
        Some(_) => tracing::info!(
            cert = %s.tls.cert.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            client_certificates = s.tls.client_ca.is_some(),
            "serving gRPC over TLS"
        ),
        None => tracing::warn!(
            "--insecure: serving gRPC in plaintext; the list, tokens and reports cross the \
             network readable and alterable"
        ),
    }
    let auth = match (&s.tokens_file, &s.tls.client_ca) {
        (Some(path), _) => Some(c2wall_coordinator::auth::Tokens::load(path, refused)?),
        (None, Some(_)) => Some(c2wall_coordinator::auth::Tokens::empty(refused)),
        (None, None) => {
            tracing::warn!("no tokens file and no client CA: every caller may call every method");
            None
        }
    };
    let auth = auth.map(|mut t| {
        (t.per_second, t.burst) = s.publish_limit;
        t
    });
    for (name, access) in &s.publishers {
        tracing::info!(publisher = %name, sources = ?access.sources, "publisher limited to sources");
    }
    let mut svc = Service::new(coord.clone());
    svc.metrics = Some(metrics.clone());
    svc.heartbeat = Duration::from_secs(s.heartbeat);
    svc.limits = s.limits.clone();
    let rollout = c2wall_coordinator::rollout::Rollout::new(s.rollout.clone());
    svc.rollout = rollout.clone();
    metrics.register(Box::new(
        c2wall_coordinator::rollout::collector::RolloutCollector::new(rollout.clone())?,
    ))?;
    svc.publishers = Arc::new(
        s.publishers
            .iter()
            .map(|(k, v)| (k.clone(), v.sources.clone()))
            .collect(),
    );
    let feeds = s.feeds.clone();
    let (upstreams, upstream_dir) = (s.upstreams.clone(), s.store.local_dir());
    let rpz = s.rpz.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if !upstreams.is_empty() {
            let board = c2wall_coordinator::upstream::Board::start(
                coord.clone(),
                upstreams,
                &upstream_dir,
            )?;
            metrics.register(Box::new(
                c2wall_coordinator::upstream::collector::UpstreamCollector::new(board.clone())?,
            ))?;
            svc.upstreams = board;
        }
        if let Some(cfg) = rpz {
            let m = Arc::new(c2wall_coordinator::rpz::metrics::RpzMetrics::new()?);
            m.register(&metrics)?;
            c2wall_coordinator::rpz::start(coord.clone(), cfg, m).await?;
        }
        if !feeds.is_empty() {
            let runner = Runner::new(coord.clone(), feeds, metrics.clone());
            svc.feeds = Some(runner.board.clone());
            runner.spawn();
            tracing::info!(feeds = runner.feeds.len(), "pulling feeds");
        }
        let m = metrics.clone();
        let c = coord.clone();
        let app = Router::new()
            .route(
                "/metrics",
                get(move || async move {
                    m.version.set(c.latest_version() as i64);
                    // Collecting reads the store (agents' lag): off the async
                    // workers, as every store call.
                    let m = m.clone();
                    tokio::task::spawn_blocking(move || m.render())
                        .await
                        .unwrap_or_default()
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", {
                let c = coord.clone();
                get(move || async move {
                    // Ready when the store answers.
                    let c = c.clone();
                    match tokio::task::spawn_blocking(move || c.history(0, 1)).await {
                        Ok(Ok(_)) => (axum::http::StatusCode::OK, "ready\n".to_string()),
                        Ok(Err(e)) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("store: {e}\n"),
                        ),
                        Err(e) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("{e}\n"),
                        ),
                    }
                })
            });
        let listener = tokio::net::TcpListener::bind(s.metrics_addr)
            .await
            .with_context(|| format!("binding the metrics address {}", s.metrics_addr))?;
        tracing::info!(addr = %s.metrics_addr, "serving /metrics, /healthz, /readyz");
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Expiry and compaction run beside the server.
        let c = coord.clone();
        let m = metrics.clone();
        let ro = rollout.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let (c, m, ro) = (c.clone(), m.clone(), ro.clone());
                let retention = s.retention;
                let r = tokio::task::spawn_blocking(move || {
                    // With replicas, one replica does this work (the lease
                    // holder); the others learn its versions from the store.
                    let leads = c.leads();
                    m.leads.set(leads as i64);
                    if leads {
                        if let Some(v) = c.promote_due()? {
                            tracing::info!(
                                version = v.version,
                                promoted = v.upserts,
                                "monitor entries promoted to drop"
                            );
                        }
                        if let Some(v) = c.tick()? {
                            tracing::info!(
                                version = v.version,
                                removed = v.removals,
                                added = v.upserts,
                                "validity windows applied"
                            );
                        }
                        if n.is_multiple_of(60) {
                            c.compact(retention)?;
                        }
                    }
                    // Every replica: the leader moves the stages, the others
                    // take the ceilings it stored.
                    if let Err(e) = ro.tick(&c) {
                        tracing::error!(error = %e, "rollout");
                    }
                    Ok::<_, c2wall_coordinator::CoordError>(())
                })
                .await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "expiry/compaction");
                }
            }
        });
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // A peer that stops reading its socket stops answering pings: its
        // connection (and what HTTP/2 buffered for it) goes within ~40 s.
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(s.limits.max_streams_per_connection))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(timer)
            .layer(c2wall_coordinator::auth::AuthLayer(auth))
            .add_service(PublisherServer::new(svc.clone()))
            .add_service(AgentSyncServer::new(svc));
        let stopped = async {
            let _ = stop_rx.await;
        };
        let tls_settings = tls.map(c2wall_tls::serve::Settings::new);
        let server: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            match &tls_settings {
                Some(settings) => {
                    let listener = tokio::net::TcpListener::bind(s.listen)
                        .await
                        .with_context(|| format!("binding {}", s.listen))?;
                    let refused = refused_tls.clone();
                    let l = &s.limits;
                    let limits = c2wall_tls::serve::Limits {
                        max_connections: l.max_connections,
                        per_peer: l.max_connections_per_peer,
                        unidentified_per_peer: l.max_unidentified_per_peer,
                        idle: l.idle_connection(),
                    };
                    let incoming = c2wall_tls::serve::incoming(
                        listener,
                        settings.clone(),
                        limits,
                        Arc::new(move |peer, why: c2wall_tls::serve::Refusal, reason: &str| {
                            refused.with_label_values(&[why.label()]).inc();
                            match why {
                                c2wall_tls::serve::Refusal::Idle => {
                                    tracing::info!(%peer, reason, "closed an idle connection")
                                }
                                _ => tracing::warn!(%peer, reason, kind = why.label(),
                                    "refused a connection"),
                            }
                        }),
                    );
                    Box::pin(router.serve_with_incoming_shutdown(incoming, stopped))
                }
                None => Box::pin(router.serve_with_shutdown(s.listen, stopped)),
            };
        tracing::info!(listen = %s.listen, "serving c2wall.v1");
        let server = tokio::spawn(server);
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload_tls(&s.tls, tls_settings.as_ref()),
            }
        }
        tracing::info!("shutting down: draining for up to {DRAIN:?}");
        let _ = stop_tx.send(());
        match tokio::time::timeout(DRAIN, server).await {
            Ok(Ok(r)) => r.context("server")?,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!("drain deadline passed; ending open agent streams"),
        }
        Ok(())
    })
}
