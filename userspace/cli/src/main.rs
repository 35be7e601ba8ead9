//! `c2wall`: publish, withdraw and inspect the coordinator's blocklist.
//!
//! Exit codes: 0 done; 1 the coordinator refused the request (the message says
//! why, naming the field), or `feed check` found rejected lines or truncation;
//! 2 bad usage; 3 the coordinator could not be reached.

mod admin;
mod args;
mod ca;
mod conn;
mod explain;
mod feed;
mod output;
mod rollout;
mod text;

use args::{Cli, Command, Scope};

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use c2wall_model::wire::{entry_to_wire, identity_to_wire};
use c2wall_model::{Action, Direction, Entry, Identity, PortScope, Target};
use c2wall_proto::v1::{self as pb, publisher_client::PublisherClient};
use clap::Parser;

/// A prefix or a domain (`evil.example`, `*.evil.example`) with its scope.
fn identity(prefix: &str, scope: &Scope) -> anyhow::Result<Identity> {
    let target: Target = prefix.parse().map_err(|e| anyhow!("{e}"))?;
    let scope = match (&scope.protocol, scope.port) {
        (Some(p), Some(port)) => {
            Some(PortScope::parse(p, &port.to_string()).map_err(|e| anyhow!("{e}"))?)
        }
        _ => None,
    };
    if let (Target::Domain(d), Some(_)) = (&target, scope) {
        return Err(anyhow!(
            "`{d}` is a domain entry: it has no protocol or port"
        ));
    }
    Ok(Identity { target, scope })
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
    // `c2wall list | head` ends quietly, as `ls | head` does, instead of
    // panicking on the closed pipe. Sockets are unaffected: the standard
    // library sends with MSG_NOSIGNAL.
    // SAFETY: called before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (urls, tls) = match conn::resolve(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("c2wall: error: {e}");
            return ExitCode::from(2);
        }
    };
    // Replaced by the replica that answered, for messages.
    let mut url = urls.join(", ");
    match rt.block_on(run(cli, &urls, &mut url, &tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(s))
            if s.code() == tonic::Code::Cancelled
                || (s.code() == tonic::Code::Unknown && s.message() == "transport error") =>
        {
            // The connection ended under the call: with TLS 1.3 that is how a
            // client certificate the coordinator does not accept shows up.
            eprintln!(
                "c2wall: the coordinator at {url} closed the connection ({}){}",
                std::error::Error::source(&s)
                    .map(conn::chain)
                    .unwrap_or_else(|| s.message().to_string()),
                if tls.cert.is_some() {
                    "; is --tls-cert issued by the CA the coordinator trusts (--tls-client-ca), and not revoked?"
                } else {
                    ""
                }
            );
            ExitCode::from(1)
        }
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

async fn run(
    cli: Cli,
    urls: &[String],
    used: &mut String,
    tls: &c2wall_tls::ClientTls,
) -> Result<(), Failure> {
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
        Command::Ca { cmd } => return Ok(ca::run(cmd, cli.json)?),
        other => other,
    };
    let channel = conn::first_reachable(urls, tls, used).await?;
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
            expedite,
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
                        target: id.target,
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
                        expedite,
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
                        expedite: false,
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
            explain::print(&address, &r, cli.json);
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
        Command::Lineage {
            move_from,
            up_to_version,
            reason,
        } => {
            let r = client
                .lineage(with_actor(
                    &actor,
                    pb::LineageRequest {
                        from_lineage: move_from.unwrap_or_default(),
                        from_version: up_to_version.unwrap_or(0),
                        reason: reason.unwrap_or_default(),
                    },
                ))
                .await?
                .into_inner();
            output::lineage(&r, cli.json);
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
        Command::Rollout { cmd } => rollout::run(&mut client, cmd, &actor, cli.json).await?,
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
        Command::Ca { .. } => unreachable!("handled before connecting"),
    }
    Ok(())
}

/// Names the caller in the request (recorded with the version it makes).
/// The coordinator client, with the bearer token on every call.
pub(crate) type Client = PublisherClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        c2wall_model::wire::Bearer,
    >,
>;

pub(crate) fn with_actor<T>(actor: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = actor.parse() {
        r.metadata_mut().insert("x-c2wall-actor", v);
    }
    r
}
