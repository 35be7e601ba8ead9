//! `c2wall rollout status|resume`: versions in flight through the rollout
//! stages, and clearing a freeze.

use c2wall_proto::v1 as pb;
use clap::Subcommand;
use serde_json::json;

use crate::with_actor;

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Each stage: who is in it, its version ceiling, agents at it, soak
    /// left, the health signals and their bounds; a freeze and its cause.
    Status,
    /// Clear a freeze after a breach (admin, audited): versions flow through
    /// the stages again. Check the frozen version's entries first.
    Resume {
        /// Why: recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(
    client: &mut crate::Client,
    cmd: Option<RolloutCommand>,
    actor: &str,
    as_json: bool,
) -> Result<(), tonic::Status> {
    let r = match cmd.unwrap_or(RolloutCommand::Status) {
        RolloutCommand::Status => client
            .rollout_status(with_actor(actor, pb::RolloutStatusRequest {}))
            .await?
            .into_inner(),
        RolloutCommand::Resume { reason } => client
            .rollout_resume(with_actor(actor, pb::RolloutResumeRequest { reason }))
            .await?
            .into_inner(),
    };
    show(&r, as_json);
    Ok(())
}

fn show(r: &pb::RolloutStatusResponse, as_json: bool) {
    if as_json {
        let stages: Vec<_> = r
            .stages
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "selector": s.selector,
                    "ceiling": s.ceiling,
                    "agents": s.agents,
                    "agents_at_ceiling": s.agents_at_ceiling,
                    "soak_seconds": s.soak_seconds,
                    "soak_left_seconds": s.soak_left_seconds,
                    "signals": s.signals.iter().map(|g| json!({
                        "name": g.name, "value": g.value, "bound": g.bound, "breached": g.breached,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "enabled": r.enabled,
                "latest_version": r.latest_version,
                "stages": stages,
                "frozen": r.frozen,
                "rollback_version": r.rollback_version,
            })
        );
        return;
    }
    if !r.enabled {
        println!(
            "no staged rollout ([[rollout.stage]] not configured): version {} goes to every agent at once",
            r.latest_version
        );
        return;
    }
    println!("latest version {}", r.latest_version);
    if !r.frozen.is_empty() {
        println!(
            "FROZEN: {} (undone by version {}); `c2wall rollout resume --reason ...` once checked",
            r.frozen, r.rollback_version
        );
    }
    println!(
        "{:<12} {:<22} {:>8} {:>12} {:>10}  SIGNALS (value/bound)",
        "STAGE", "WHO", "CEILING", "AT/AGENTS", "SOAK LEFT"
    );
    for s in &r.stages {
        let signals: Vec<String> = s
            .signals
            .iter()
            .map(|g| {
                format!(
                    "{} {}/{}{}",
                    g.name,
                    g.value,
                    g.bound,
                    if g.breached { " BREACHED" } else { "" }
                )
            })
            .collect();
        println!(
            "{:<12} {:<22} {:>8} {:>12} {:>9}s  {}",
            s.name,
            s.selector,
            s.ceiling,
            format!("{}/{}", s.agents_at_ceiling, s.agents),
            s.soak_left_seconds,
            signals.join(", ")
        );
    }
}
