//! `c2wall`: publish, withdraw and inspect the coordinator's blocklist.
//!
//! Exit codes: 0 done; 1 the coordinator refused the request (the message says
//! why, naming the field), or `feed check` found rejected lines or truncation;
//! 2 bad usage; 3 the coordinator could not be reached.

mod admin;
mod feed;
mod output;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{anyhow, Context};
use c2wall_model::wire::{entry_to_wire, identity_to_wire};
use c2wall_model::{Action, Direction, Entry, Identity, PortScope, Prefix};
use c2wall_proto::v1::{self as pb, publisher_client::PublisherClient};
use clap::{Args, Parser, Subcommand};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    name = "c2wall",
    version,
    about = "Publish, withdraw and inspect the C&C blocklist on a c2wall coordinator.",
    after_help = "The coordinator URL comes from --coordinator, else $C2WALL_COORDINATOR, else \
        `coordinator = \"...\"` in ~/.config/c2wall/cli.toml or /etc/c2wall/cli.toml, else \
        http://127.0.0.1:50051.\n\nExamples:\n  \
        c2wall publish 203.0.113.66 --source operator:jpcert --reference SBL123 --reason 'C&C seen'\n  \
        c2wall publish 192.0.2.10 --protocol tcp --port 443 --action monitor\n  \
        c2wall publish 198.51.100.20 --soak 24h --reason 'new C&C, watch first'\n  \
        c2wall publish --file feodo.txt --source feodo\n  \
        c2wall withdraw 203.0.113.66\n  \
        c2wall list --within 203.0.113.0/24 --json\n  \
        c2wall get 192.0.2.10 --protocol tcp --port 443\n  \
        c2wall explain 203.0.113.66\n  \
        c2wall history\n  \
        c2wall rollback 41 --reason 'bad import'\n  \
        c2wall agents\n  \
        c2wall mode off --reason 'incident 42: stop all blocking'\n  \
        c2wall sightings --within 203.0.113.0/24 --since 2026-11-01T00:00:00Z\n  \
        c2wall feed check --format spamhaus-drop drop.txt\n  \
        c2wall feed import --format feodo-csv --source feodo ipblocklist.csv --action drop"
)]
struct Cli {
    /// Coordinator URL, e.g. http://coordinator.example:50051.
    #[arg(long, global = true, env = "C2WALL_COORDINATOR")]
    coordinator: Option<String>,
    /// Who you are, recorded with every version you make [default: $USER].
    /// With tokens, the coordinator records the token's name instead.
    #[arg(long, global = true, env = "C2WALL_ACTOR")]
    actor: Option<String>,
    /// Bearer token for a coordinator that checks roles
    /// (`c2wall-coordinator token`); prefer the environment variable.
    #[arg(long, global = true, env = "C2WALL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Scope {
    /// Restrict to one protocol (needs --port).
    #[arg(long, value_parser = ["tcp", "udp"], requires = "port")]
    protocol: Option<String>,
    /// The C&C-side port (needs --protocol).
    #[arg(long, requires = "protocol")]
    port: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Add or update entries (one version, all or nothing).
    Publish {
        /// Prefixes (a bare address is a /32 or /128). Or use --file.
        prefixes: Vec<String>,
        #[command(flatten)]
        scope: Scope,
        #[arg(long, value_parser = ["drop", "monitor"], default_value = "drop")]
        action: String,
        #[arg(long, value_parser = ["both", "to", "from"], default_value = "both")]
        direction: String,
        /// Who vouches for the entries [default: operator:<actor>].
        #[arg(long)]
        source: Option<String>,
        /// Category or malware family.
        #[arg(long, default_value = "")]
        category: String,
        /// Evidence: SBL id, URL, ticket.
        #[arg(long, default_value = "")]
        reference: String,
        /// 0-100.
        #[arg(long, default_value_t = 100)]
        confidence: u32,
        /// Expiry, RFC 3339 (e.g. 2026-12-31T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        valid_until: Option<String>,
        /// Monitor first: publish as monitor and promote to drop after this
        /// long (e.g. 24h) unless someone objects (`c2wall object`).
        #[arg(long, value_name = "DURATION", conflicts_with = "action")]
        soak: Option<String>,
        /// Entries in the agent's blocklist syntax, one per line (with --file,
        /// scope/action/direction come from each line).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Why: recorded with the version.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove entries (one version, all or nothing).
    Withdraw {
        prefixes: Vec<String>,
        #[command(flatten)]
        scope: Scope,
        /// Only this source's record [default: every source's].
        #[arg(long)]
        source: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List records (one per entry and source).
    List {
        /// Only entries inside this prefix.
        #[arg(long)]
        within: Option<String>,
        #[arg(long)]
        source: Option<String>,
    },
    /// One entry: every source's record and what agents enforce.
    Get {
        prefix: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Which entries match an address, most specific first.
    Explain { address: String },
    /// Recent versions.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Make the list equal to an earlier version's, as a new version.
    Rollback {
        version: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Agents, the version each has applied, and when each was last seen.
    Agents,
    /// Infected-subscriber sightings reported by the edge agents, newest first.
    Sightings {
        /// Only sightings of entries inside this prefix.
        #[arg(long)]
        within: Option<String>,
        #[arg(long, value_parser = ["ipv4", "ipv6"])]
        family: Option<String>,
        /// Only those last seen at or after this time (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The protected allowlist: prefixes no entry may overlap.
    Protect {
        #[command(subcommand)]
        cmd: admin::ProtectCommand,
    },
    /// Changes the change breaker held for an admin's confirmation.
    Pending {
        #[command(subcommand)]
        cmd: Option<admin::PendingCommand>,
    },
    /// Stop a monitor entry's scheduled promotion to drop (it stays monitor).
    Object {
        prefix: String,
        #[command(flatten)]
        scope: Scope,
        /// Only this source's record [default: every source's].
        #[arg(long)]
        source: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The kill switch: run every agent (or one) in this mode, overriding
    /// their own, within a second. `clear` gives agents back their own mode.
    Mode {
        #[arg(value_parser = ["off", "monitor", "enforce", "clear"])]
        mode: String,
        /// Only this agent [default: the whole fleet].
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The append-only audit log, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Threat feeds: check a file, import it as a source's set, list the
    /// coordinator's feeds.
    Feed {
        #[command(subcommand)]
        cmd: feed::FeedCommand,
    },
}

fn coordinator_url(flag: Option<String>) -> String {
    if let Some(u) = flag {
        return u;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    for path in [
        format!("{home}/.config/c2wall/cli.toml"),
        "/etc/c2wall/cli.toml".into(),
    ] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(v) = text.parse::<toml::Table>() {
                if let Some(u) = v.get("coordinator").and_then(|u| u.as_str()) {
                    return u.to_string();
                }
            }
        }
    }
    "http://127.0.0.1:50051".into()
}

fn identity(prefix: &str, scope: &Scope) -> anyhow::Result<Identity> {
    let prefix: Prefix = prefix.parse().map_err(|e| anyhow!("{e}"))?;
    let scope = match (&scope.protocol, scope.port) {
        (Some(p), Some(port)) => {
            Some(PortScope::parse(p, &port.to_string()).map_err(|e| anyhow!("{e}"))?)
        }
        _ => None,
    };
    Ok(Identity { prefix, scope })
}

enum Failure {
    Usage(anyhow::Error),
    /// `feed check` found rejected lines or truncation (it printed them).
    Problems,
    Refused(tonic::Status),
    Unreachable(String),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                Failure::Unreachable(s.message().to_string())
            }
            _ => Failure::Refused(s),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Usage(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = coordinator_url(cli.coordinator.clone());
    match rt.block_on(run(cli, &url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(s)) => {
            eprintln!("c2wall: refused ({:?}): {}", s.code(), s.message());
            ExitCode::from(1)
        }
        Err(Failure::Problems) => ExitCode::from(1),
        Err(Failure::Usage(e)) => {
            eprintln!("c2wall: error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("c2wall: cannot reach the coordinator at {url}: {m}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli, url: &str) -> Result<(), Failure> {
    let actor = cli
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    // Local feed commands need no coordinator.
    let command = match cli.command {
        Command::Feed {
            cmd: feed::FeedCommand::Formats,
        } => {
            feed::formats(cli.json);
            return Ok(());
        }
        Command::Feed {
            cmd: feed::FeedCommand::Check { format, file },
        } => {
            return if feed::check(format, &file, cli.json)? {
                Ok(())
            } else {
                Err(Failure::Problems)
            };
        }
        other => other,
    };
    let endpoint = Channel::from_shared(url.to_string())
        .map_err(|e| Failure::Usage(anyhow!("coordinator URL `{url}`: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Failure::Unreachable(format!("{e:#}")))?;
    let bearer = c2wall_model::wire::Bearer::new(cli.token.as_deref())
        .map_err(|e| Failure::Usage(anyhow!("--token: {e}")))?;
    let mut client = PublisherClient::with_interceptor(channel, bearer);
    match command {
        Command::Publish {
            prefixes,
            scope,
            action,
            direction,
            source,
            category,
            reference,
            confidence,
            valid_until,
            soak,
            file,
            reason,
        } => {
            let promote_at = match &soak {
                None => 0,
                Some(d) => {
                    let d =
                        humantime::parse_duration(d).map_err(|e| anyhow!("--soak `{d}`: {e}"))?;
                    (std::time::SystemTime::now() + d)
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|t| t.as_secs() as i64)
                        .unwrap_or(0)
                }
            };
            let action = if soak.is_some() {
                "monitor".to_string()
            } else {
                action
            };
            let valid_until = match valid_until {
                None => 0,
                Some(s) => humantime::parse_rfc3339_weak(&s)
                    .map_err(|e| anyhow!("--valid-until `{s}`: {e}"))?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| anyhow!("--valid-until `{s}` is before 1970"))?
                    .as_secs() as i64,
            };
            let mut lines: Vec<(Identity, Action, Direction)> = Vec::new();
            for p in &prefixes {
                lines.push((
                    identity(p, &scope)?,
                    action.parse().map_err(|e| anyhow!("{e}"))?,
                    direction.parse().map_err(|e| anyhow!("{e}"))?,
                ));
            }
            if let Some(f) = &file {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                for (n, raw) in text.lines().enumerate() {
                    let line = raw.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let e = c2wall_model::parse_entry(line)
                        .map_err(|e| anyhow!("{}:{}: {e}", f.display(), n + 1))?;
                    lines.push((e.identity(), e.action, e.direction));
                }
            }
            if lines.is_empty() {
                return Err(anyhow!("nothing to publish: give prefixes or --file").into());
            }
            let upserts = lines
                .into_iter()
                .map(|(id, action, direction)| pb::Entry {
                    source: source.clone().unwrap_or_default(),
                    category: category.clone(),
                    reference: reference.clone(),
                    confidence,
                    valid_until,
                    promote_at,
                    ..entry_to_wire(&Entry {
                        prefix: id.prefix,
                        scope: id.scope,
                        action,
                        direction,
                    })
                })
                .collect();
            let r = client
                .publish(with_actor(
                    &actor,
                    pb::PublishRequest {
                        upserts,
                        withdrawals: vec![],
                        reason,
                    },
                ))
                .await?
                .into_inner();
            output::published(&r, cli.json);
        }
        Command::Withdraw {
            prefixes,
            scope,
            source,
            reason,
        } => {
            if prefixes.is_empty() {
                return Err(anyhow!("nothing to withdraw: give prefixes").into());
            }
            let withdrawals = prefixes
                .iter()
                .map(|p| {
                    Ok(pb::Withdrawal {
                        key: Some(identity_to_wire(&identity(p, &scope)?)),
                        source: source.clone().unwrap_or_default(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let r = client
                .publish(with_actor(
                    &actor,
                    pb::PublishRequest {
                        upserts: vec![],
                        withdrawals,
                        reason,
                    },
                ))
                .await?
                .into_inner();
            output::published(&r, cli.json);
        }
        Command::List { within, source } => {
            let mut all = Vec::new();
            let mut token = String::new();
            let version = loop {
                let r = client
                    .list(pb::ListRequest {
                        within: within.clone().unwrap_or_default(),
                        source: source.clone().unwrap_or_default(),
                        page_size: 10_000,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                all.extend(r.entries);
                if r.next_page_token.is_empty() {
                    break r.version;
                }
                token = r.next_page_token;
            };
            output::entries(&all, version, cli.json);
        }
        Command::Get { prefix, scope } => {
            let key = identity_to_wire(&identity(&prefix, &scope)?);
            let r = client
                .get(pb::GetRequest { key: Some(key) })
                .await?
                .into_inner();
            output::get(&r, cli.json);
        }
        Command::Explain { address } => {
            let r = client
                .explain(pb::ExplainRequest {
                    address: address.clone(),
                })
                .await?
                .into_inner();
            output::explain(&address, &r, cli.json);
        }
        Command::History { limit } => {
            let r = client
                .history(pb::HistoryRequest { before: 0, limit })
                .await?
                .into_inner();
            output::history(&r.versions, cli.json);
        }
        Command::Rollback { version, reason } => {
            let r = client
                .rollback(with_actor(&actor, pb::RollbackRequest { version, reason }))
                .await?
                .into_inner();
            output::published(&r, cli.json);
        }
        Command::Agents => {
            let r = client.agents(pb::AgentsRequest {}).await?.into_inner();
            output::agents(&r, cli.json);
        }
        Command::Sightings {
            within,
            family,
            since,
            limit,
        } => {
            let since = match since {
                None => 0,
                Some(s) => humantime::parse_rfc3339_weak(&s)
                    .map_err(|e| anyhow!("--since `{s}`: {e}"))?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| anyhow!("--since `{s}` is before 1970"))?
                    .as_secs() as i64,
            };
            let r = client
                .sightings(pb::SightingsRequest {
                    within: within.unwrap_or_default(),
                    family: family.unwrap_or_default(),
                    since,
                    limit,
                })
                .await?
                .into_inner();
            output::sightings(&r, cli.json);
        }
        Command::Protect { cmd } => admin::protect(&mut client, cmd, &actor, cli.json).await?,
        Command::Pending { cmd } => admin::pending_cmd(&mut client, cmd, &actor, cli.json).await?,
        Command::Object {
            prefix,
            scope,
            source,
            reason,
        } => {
            let r = client
                .object(with_actor(
                    &actor,
                    pb::ObjectRequest {
                        key: Some(identity_to_wire(&identity(&prefix, &scope)?)),
                        source: source.unwrap_or_default(),
                        reason,
                    },
                ))
                .await?
                .into_inner();
            output::published(&r, cli.json);
        }
        Command::Mode {
            mode,
            agent,
            reason,
        } => admin::mode(&mut client, mode, agent, reason, &actor, cli.json).await?,
        Command::Audit { limit } => {
            let r = client
                .audit(pb::AuditRequest { before: 0, limit })
                .await?
                .into_inner();
            admin::audit(&r, cli.json);
        }
        Command::Feed { cmd } => match cmd {
            feed::FeedCommand::Import(a) => {
                let r = feed::import(&mut client, a, &actor, cli.json).await??;
                feed::imported(&r, cli.json);
            }
            feed::FeedCommand::List => {
                let r = client.feeds(pb::FeedsRequest {}).await?.into_inner();
                feed::list(&r, cli.json);
            }
            feed::FeedCommand::Formats | feed::FeedCommand::Check { .. } => {
                unreachable!("handled before connecting")
            }
        },
    }
    Ok(())
}

/// Names the caller in the request (recorded with the version it makes).
/// The coordinator client, with the bearer token on every call.
pub(crate) type Client = PublisherClient<
    tonic::service::interceptor::InterceptedService<Channel, c2wall_model::wire::Bearer>,
>;

pub(crate) fn with_actor<T>(actor: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = actor.parse() {
        r.metadata_mut().insert("x-c2wall-actor", v);
    }
    r
}
