//! `c2wall protect`, `c2wall pending`, `c2wall audit`: the guards and the
//! audit log.

use c2wall_proto::v1 as pb;

use crate::with_actor;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum ProtectCommand {
    /// The protected prefixes and domains (no entry may overlap them).
    List,
    /// Protect a prefix (entries inside it or containing it are refused) or,
    /// with --domain, a name and everything below it (`c2wall protect add
    /// --domain isp.example --why "our own portal"`).
    Add {
        #[arg(required_unless_present = "domain", conflicts_with = "domain")]
        prefix: Option<String>,
        /// A domain: entries at or below it, and wildcards above it, are refused.
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        /// Why it must never be blocked (e.g. "ISP resolvers").
        #[arg(long)]
        why: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Stop protecting a prefix or (--domain) a name.
    Remove {
        #[arg(required_unless_present = "domain", conflicts_with = "domain")]
        prefix: Option<String>,
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum PendingCommand {
    /// Changes the breaker held (the default).
    List,
    /// Apply a held change.
    Confirm {
        id: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Drop a held change.
    Reject {
        id: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

use crate::output::ts;

pub fn protected(r: &pb::ProtectedResponse, as_json: bool) {
    if as_json {
        let list: Vec<_> = r
            .prefixes
            .iter()
            .map(|p| {
                if p.domain.is_empty() {
                    json!({"prefix": p.prefix, "why": p.why})
                } else {
                    json!({"domain": p.domain, "why": p.why})
                }
            })
            .collect();
        println!("{}", json!({ "protected": list }));
        return;
    }
    crate::out!("{:<40} WHY", "PROTECTED PREFIX OR DOMAIN");
    for p in &r.prefixes {
        if p.domain.is_empty() {
            crate::out!("{:<40} {}", p.prefix, p.why);
        } else {
            crate::out!("{:<40} {}", format!("{} (and below)", p.domain), p.why);
        }
    }
}

pub fn pending(r: &pb::PendingResponse, as_json: bool) {
    if as_json {
        let list: Vec<_> = r
            .changes
            .iter()
            .map(|c| {
                json!({"id": c.id, "created_at": c.created_at, "actor": c.actor,
                "reason": c.reason, "kind": c.kind, "summary": c.summary})
            })
            .collect();
        println!("{}", json!({ "pending": list }));
        return;
    }
    if r.changes.is_empty() {
        crate::out!("no held changes");
        return;
    }
    for c in &r.changes {
        crate::out!(
            "#{} {} {} by {}: {}{}",
            c.id,
            ts(c.created_at),
            c.kind,
            c.actor,
            c.summary,
            if c.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.reason)
            }
        );
    }
    crate::out!("confirm with `c2wall pending confirm ID`, drop with `c2wall pending reject ID`");
}

pub fn audit(r: &pb::AuditResponse, as_json: bool) {
    if as_json {
        let list: Vec<_> = r
            .events
            .iter()
            .map(|e| {
                json!({"seq": e.seq, "at": e.at, "actor": e.actor, "peer": e.peer,
                "action": e.action, "detail": e.detail, "reason": e.reason})
            })
            .collect();
        println!("{}", json!({ "audit": list }));
        return;
    }
    crate::out!(
        "{:>6} {:<20} {:<20} {:<22} {:<10} DETAIL (REASON)",
        "SEQ",
        "WHEN",
        "WHO",
        "FROM",
        "ACTION"
    );
    for e in &r.events {
        crate::out!(
            "{:>6} {:<20} {:<20} {:<22} {:<10} {}{}",
            e.seq,
            ts(e.at),
            e.actor,
            if e.peer.is_empty() { "-" } else { &e.peer },
            e.action,
            e.detail,
            if e.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.reason)
            }
        );
    }
}

use crate::Client;

pub async fn protect(
    client: &mut Client,
    cmd: ProtectCommand,
    actor: &str,
    json: bool,
) -> Result<(), tonic::Status> {
    let r = match cmd {
        ProtectCommand::List => client.protected(pb::ProtectedRequest {}).await?,
        ProtectCommand::Add {
            prefix,
            domain,
            why,
            reason,
        } => {
            client
                .protect(with_actor(
                    actor,
                    pb::ProtectRequest {
                        prefix: prefix.unwrap_or_default(),
                        domain: domain.unwrap_or_default(),
                        why,
                        remove: false,
                        reason,
                    },
                ))
                .await?
        }
        ProtectCommand::Remove {
            prefix,
            domain,
            reason,
        } => {
            client
                .protect(with_actor(
                    actor,
                    pb::ProtectRequest {
                        prefix: prefix.unwrap_or_default(),
                        domain: domain.unwrap_or_default(),
                        why: String::new(),
                        remove: true,
                        reason,
                    },
                ))
                .await?
        }
    };
    protected(&r.into_inner(), json);
    Ok(())
}

pub async fn pending_cmd(
    client: &mut Client,
    cmd: Option<PendingCommand>,
    actor: &str,
    json: bool,
) -> Result<(), tonic::Status> {
    match cmd.unwrap_or(PendingCommand::List) {
        PendingCommand::List => {
            let r = client.pending(pb::PendingRequest {}).await?.into_inner();
            pending(&r, json);
        }
        PendingCommand::Confirm { id, reason } => {
            let r = client
                .resolve_pending(with_actor(
                    actor,
                    pb::ResolvePendingRequest {
                        id,
                        confirm: true,
                        reason,
                    },
                ))
                .await?
                .into_inner();
            if json {
                println!("{}", serde_json::json!({"id": id, "version": r.version}));
            } else {
                crate::out!("pending #{id} confirmed: version {}", r.version);
            }
        }
        PendingCommand::Reject { id, reason } => {
            client
                .resolve_pending(with_actor(
                    actor,
                    pb::ResolvePendingRequest {
                        id,
                        confirm: false,
                        reason,
                    },
                ))
                .await?;
            if json {
                println!("{}", serde_json::json!({"id": id, "rejected": true}));
            } else {
                crate::out!("pending #{id} rejected");
            }
        }
    };
    Ok(())
}

pub async fn mode(
    client: &mut Client,
    mode: String,
    agent: Option<String>,
    reason: String,
    actor: &str,
    json: bool,
) -> Result<(), tonic::Status> {
    let mode = if mode == "clear" { String::new() } else { mode };
    let r = client
        .set_mode(with_actor(
            actor,
            pb::SetModeRequest {
                mode,
                agent_id: agent.unwrap_or_default(),
                reason,
            },
        ))
        .await?
        .into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({"fleet": r.fleet, "agents": r.agents})
        );
    } else {
        let show = |m: &str| {
            if m.is_empty() {
                "(agents' own)".to_string()
            } else {
                m.to_string()
            }
        };
        crate::out!("fleet: {}", show(&r.fleet));
        for (a, m) in &r.agents {
            crate::out!("agent {a}: {}", show(m));
        }
    }
    Ok(())
}
