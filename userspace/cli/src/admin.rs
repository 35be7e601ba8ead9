//! `c2wall protect`, `c2wall pending`, `c2wall audit`: the guards and the
//! audit log.

use c2wall_proto::v1 as pb;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum ProtectCommand {
    /// The protected prefixes (no entry may overlap them).
    List,
    /// Protect a prefix: entries inside it or containing it are refused.
    Add {
        prefix: String,
        /// Why it must never be blocked (e.g. "ISP resolvers").
        #[arg(long)]
        why: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Stop protecting a prefix.
    Remove {
        prefix: String,
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

fn ts(t: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
    )
    .to_string()
}

pub fn protected(r: &pb::ProtectedResponse, as_json: bool) {
    if as_json {
        let list: Vec<_> = r
            .prefixes
            .iter()
            .map(|p| json!({"prefix": p.prefix, "why": p.why}))
            .collect();
        println!("{}", json!({ "protected": list }));
        return;
    }
    println!("{:<40} WHY", "PROTECTED PREFIX");
    for p in &r.prefixes {
        println!("{:<40} {}", p.prefix, p.why);
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
        println!("no held changes");
        return;
    }
    for c in &r.changes {
        println!(
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
    println!("confirm with `c2wall pending confirm ID`, drop with `c2wall pending reject ID`");
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
    println!(
        "{:>6} {:<20} {:<20} {:<22} {:<10} DETAIL (REASON)",
        "SEQ", "WHEN", "WHO", "FROM", "ACTION"
    );
    for e in &r.events {
        println!(
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
