//! Coordinator settings: flags over a TOML file over defaults.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::error::CoordError;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_STORE: &str = "/var/lib/c2wall/coordinator.db";
pub const DEFAULT_METRICS: &str = "127.0.0.1:9465";

#[derive(Args, Debug, Default, Clone)]
pub struct CoordArgs {
    /// Config file (TOML); every flag can be set there too, flags win.
    #[arg(long, short = 'c', env = "C2WALL_COORDINATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// The store: a SQLite file (created if missing; also `sqlite:PATH`), or a
    /// PostgreSQL database shared by several replicas,
    /// `postgres://USER@HOST/DB` or `postgres://USER@/DB?host=/run/postgresql`
    /// for a Unix socket [default: /var/lib/c2wall/coordinator.db].
    #[arg(long, value_name = "PATH|URL")]
    pub store: Option<String>,
    /// Versions whose deltas are kept; agents further behind get a snapshot
    /// [default: 10000].
    #[arg(long, value_name = "VERSIONS")]
    pub retention: Option<u64>,
    /// Seconds between heartbeats on agent streams [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat: Option<u64>,
    /// Deltas an agent stream may fall behind before it is ended and the agent
    /// resyncs [default: 1024].
    #[arg(long, value_name = "DELTAS")]
    pub live_buffer: Option<usize>,
    /// Address for /metrics and /healthz [default: 127.0.0.1:9465].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Change breaker: a change adding or removing more entries than this
    /// (and more than --breaker-share of the list) is held for an admin
    /// [default: 1000; also `[guards] breaker_entries`].
    #[arg(long, value_name = "ENTRIES")]
    pub breaker_entries: Option<usize>,
    /// Change breaker share of the list, 0-1 [default: 0.1].
    #[arg(long, value_name = "SHARE")]
    pub breaker_share: Option<f64>,
    /// Ed25519 key (32 bytes or 64 hex digits; `c2wall-coordinator keygen`)
    /// that signs every version; agents trust its public key. Without one,
    /// versions are unsigned.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Bearer tokens (`SHA256-HEX ROLE NAME` lines; `c2wall-coordinator token`
    /// makes them): every call must carry one with the method's role, unless
    /// it presents a client certificate. With neither a tokens file nor
    /// --tls-client-ca every caller may call every method (a warning says so).
    #[arg(long = "tokens", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,
    /// PEM certificate to serve gRPC with (`c2wall ca issue --role
    /// coordinator --ip ADDR` makes one). TLS is required unless --insecure.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate whose client certificates identify callers: role and
    /// name come from the certificate's spiffe://c2wall/ROLE/NAME. Turns the
    /// role checks on (as --tokens does); a presented certificate that does
    /// not verify is refused in the handshake.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Revoked client certificates (PEM CRL from `c2wall ca revoke` or your
    /// CA): their holders fail the handshake. Re-read with the certificate
    /// on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_crl: Option<PathBuf>,
    /// Publishes and imports per second allowed per identity, after the burst
    /// [default: 5].
    #[arg(long, value_name = "N")]
    pub publish_rate: Option<f64>,
    /// Publishes and imports an identity may make back to back [default: 20].
    #[arg(long, value_name = "N")]
    pub publish_burst: Option<f64>,
    /// Serve plaintext gRPC: anyone on the path can read the list and, without
    /// signed versions, alter it. For a closed lab only; a warning is logged.
    #[arg(long)]
    pub insecure: bool,
    /// Serve a store that failed its start checks (records that do not match
    /// the last version's digest, acknowledged versions missing): it becomes
    /// a new lineage, with a signed move from the old one so agents follow,
    /// and the reason goes to the audit log. Without it such a store is
    /// refused, naming what is wrong.
    #[arg(long, value_name = "REASON")]
    pub recover_store: Option<String>,
    /// Entries one import may carry [default: 2000000; `[limits]` has more].
    #[arg(long, value_name = "ENTRIES")]
    pub import_max_entries: Option<usize>,
    /// Seconds an import stream may send nothing before it is abandoned,
    /// nothing committed [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub import_idle_timeout: Option<u64>,
}

/// `[tls]` in the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
}

/// `[publishers."NAME"]`: what a publisher identity may publish.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherAccess {
    /// Sources it may publish, withdraw and import under; `prefix*` matches
    /// every source starting with `prefix`.
    pub sources: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<SocketAddr>,
    /// `store = "PATH|URL"` or `[store] url = "PATH|URL"`.
    store: Option<StoreFile>,
    retention: Option<u64>,
    heartbeat: Option<u64>,
    live_buffer: Option<usize>,
    metrics_addr: Option<SocketAddr>,
    signing_key: Option<PathBuf>,
    tokens_file: Option<PathBuf>,
    publish_rate: Option<f64>,
    publish_burst: Option<f64>,
    #[serde(default)]
    tls: TlsFile,
    #[serde(default)]
    publishers: std::collections::HashMap<String, PublisherAccess>,
    /// `[[feed]]` tables.
    #[serde(default)]
    feed: Vec<crate::feeds::FeedConfig>,
    /// `[guards]`: prefix floors, domain guards and the change breaker.
    #[serde(default)]
    guards: crate::guards::GuardConfig,
    /// `[limits]`: resource bounds.
    #[serde(default)]
    limits: crate::limits::Limits,
    /// `[[rollout.stage]]` and `[rollout.bounds]`: staged rollout.
    #[serde(default)]
    rollout: crate::rollout::policy::RolloutConfig,
    /// `[[upstream]]` tables: coordinators this one follows.
    #[serde(default)]
    upstream: Vec<crate::upstream::UpstreamConfig>,
    /// `[rpz]`: the domain entries as a Response Policy Zone for resolvers.
    rpz: Option<crate::rpz::config::RpzConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StoreFile {
    Text(String),
    Table { url: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub store: crate::store::Location,
    pub retention: u64,
    pub heartbeat: u64,
    pub live_buffer: usize,
    pub metrics_addr: SocketAddr,
    pub feeds: Vec<crate::feeds::config::Feed>,
    pub guards: crate::guards::GuardConfig,
    pub signing_key: Option<PathBuf>,
    pub tokens_file: Option<PathBuf>,
    pub tls: c2wall_tls::ServerTls,
    /// Per-identity publish rate limit: (per second, burst).
    pub publish_limit: (f64, f64),
    /// Publishers limited to some sources (others may publish any source).
    pub publishers: std::collections::HashMap<String, PublisherAccess>,
    pub limits: crate::limits::Limits,
    /// `--recover-store REASON`.
    pub recover_store: Option<String>,
    /// The staged rollout (None: every version to everyone at once).
    pub rollout: Option<crate::rollout::policy::Policy>,
    /// Upstream coordinators followed.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// The RPZ server (None: not served).
    pub rpz: Option<crate::rpz::config::Rpz>,
}

impl Settings {
    pub fn resolve(a: &CoordArgs) -> Result<Self, CoordError> {
        let f: File = match &a.config {
            None => File::default(),
            Some(p) => {
                let err = |message: String| CoordError::Config {
                    path: p.display().to_string(),
                    message,
                };
                let text = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
                toml::from_str(&text).map_err(|e| err(e.to_string()))?
            }
        };
        // A setting refused, naming the config file.
        let config_error = |message: String| CoordError::Config {
            path: a
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            message,
        };
        let s = Settings {
            listen: a
                .listen
                .or(f.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("literal")),
            store: crate::store::Location::parse(
                &a.store
                    .clone()
                    .or(f.store.map(|s| match s {
                        StoreFile::Text(t) | StoreFile::Table { url: t } => t,
                    }))
                    .unwrap_or_else(|| DEFAULT_STORE.into()),
            ),
            retention: a.retention.or(f.retention).unwrap_or(10_000),
            heartbeat: a.heartbeat.or(f.heartbeat).unwrap_or(5),
            live_buffer: a.live_buffer.or(f.live_buffer).unwrap_or(1024),
            metrics_addr: a
                .metrics_addr
                .or(f.metrics_addr)
                .unwrap_or_else(|| DEFAULT_METRICS.parse().expect("literal")),
            feeds: Vec::new(),
            upstreams: Vec::new(),
            rpz: f.rpz.as_ref().map(|r| r.check()).transpose()?,
            signing_key: a.signing_key.clone().or(f.signing_key.clone()),
            tokens_file: a.tokens_file.clone().or(f.tokens_file.clone()),
            tls: c2wall_tls::ServerTls {
                cert: a.tls_cert.clone().or(f.tls.cert.clone()),
                key: a.tls_key.clone().or(f.tls.key.clone()),
                client_ca: a.tls_client_ca.clone().or(f.tls.client_ca.clone()),
                crl: a.tls_crl.clone().or(f.tls.crl.clone()),
                insecure: a.insecure || f.tls.insecure,
            },
            publishers: f.publishers.clone(),
            publish_limit: (
                a.publish_rate.or(f.publish_rate).unwrap_or(5.0),
                a.publish_burst.or(f.publish_burst).unwrap_or(20.0),
            ),
            limits: crate::limits::Limits {
                import_max_entries: a.import_max_entries.unwrap_or(f.limits.import_max_entries),
                import_idle_seconds: a
                    .import_idle_timeout
                    .unwrap_or(f.limits.import_idle_seconds),
                ..f.limits.clone()
            },
            recover_store: a.recover_store.clone(),
            rollout: crate::rollout::policy::Policy::from_config(&f.rollout)
                .map_err(|e| config_error(e.to_string()))?,
            guards: crate::guards::GuardConfig {
                breaker_entries: a.breaker_entries.unwrap_or(f.guards.breaker_entries),
                breaker_share: a.breaker_share.unwrap_or(f.guards.breaker_share),
                ..f.guards.clone()
            },
        };
        let mut s = s;
        crate::guards::Guards::check_config(&s.guards).map_err(|e| config_error(e.to_string()))?;
        let mut names = std::collections::HashSet::new();
        for fc in &f.feed {
            let feed = fc.check().map_err(config_error)?;
            if !names.insert(feed.name.clone()) {
                return Err(CoordError::Precondition(format!(
                    "two feeds are named `{}`",
                    feed.name
                )));
            }
            s.feeds.push(feed);
        }
        for u in &f.upstream {
            let u = u.check()?;
            if s.upstreams.iter().any(|o| o.name == u.name) {
                return Err(CoordError::Setting(format!(
                    "two [[upstream]] tables are named `{}`",
                    u.name
                )));
            }
            s.upstreams.push(u);
        }
        s.limits.check().map_err(CoordError::Precondition)?;
        if !(s.publish_limit.0 > 0.0 && s.publish_limit.1 >= 1.0) {
            return Err(CoordError::Precondition(
                "publish_rate must be above 0 and publish_burst at least 1".into(),
            ));
        }
        if s.retention == 0 || s.heartbeat == 0 || s.live_buffer == 0 {
            return Err(CoordError::Precondition(
                "retention, heartbeat and live_buffer must be at least 1".into(),
            ));
        }
        Ok(s)
    }
}
