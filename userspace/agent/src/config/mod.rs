//! Settings: command-line flags over a TOML file over defaults.

mod args;
mod file;
mod values;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

pub use args::RunArgs;
pub use file::Capacity;
pub use values::{AttachArg, HookArg, ModeArg, XdpModeArg};

use crate::error::AgentError;
use crate::paths::{Paths, DEFAULT_CONFIG, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR};
use file::{load_file, FileConfig};

/// The merged, validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeArg,
    pub attach: AttachArg,
    pub hook: HookArg,
    pub blocklists: Vec<PathBuf>,
    pub allowlist: Option<PathBuf>,
    pub mode: ModeArg,
    pub metrics_addr: SocketAddr,
    pub paths: Paths,
    pub detach_on_exit: bool,
    pub capacity: Capacity,
    /// The coordinator's replicas, in the order they are tried (empty: none).
    pub coordinators: Vec<String>,
    pub agent_id: String,
    /// Sent with each subscription and report (rollout stages).
    pub labels: c2wall_model::Labels,
    pub sample_budget: u32,
    pub sightings_clear: bool,
    /// Seconds.
    pub sightings_retention: i64,
    pub sightings_max: usize,
    /// Seconds between sighting reports.
    pub report_interval: u64,
    /// Seconds behind the coordinator after which /readyz fails.
    pub sync_unready_after: u64,
    /// Hex public keys versions must be signed by (empty: unchecked).
    pub trust_keys: Vec<String>,
    pub token_file: Option<PathBuf>,
    /// How the coordinator is reached.
    pub tls: c2wall_tls::ClientTls,
    /// Each of `coordinators` with its TLS settings, built (and the files
    /// checked) once here.
    pub endpoints: Vec<tonic::transport::Endpoint>,
    /// The file the settings came from, re-read on SIGHUP.
    pub source: Option<PathBuf>,
    /// `[follow]`: following DNS answers for listed names.
    pub follow: crate::follow::table::Limits,
}

impl Settings {
    pub fn resolve(args: &RunArgs) -> Result<Self, AgentError> {
        let (file, source) = match &args.config {
            Some(p) => (load_file(p)?, Some(p.clone())),
            None if Path::new(DEFAULT_CONFIG).exists() => (
                load_file(Path::new(DEFAULT_CONFIG))?,
                Some(DEFAULT_CONFIG.into()),
            ),
            None => (FileConfig::default(), None),
        };
        let pick =
            |cli: &Vec<PathBuf>, f: Vec<PathBuf>| if cli.is_empty() { f } else { cli.clone() };
        let mut s = Settings {
            interfaces: if args.interfaces.is_empty() {
                file.interfaces
            } else {
                args.interfaces.clone()
            },
            xdp_mode: args.xdp_mode.or(file.xdp_mode).unwrap_or_default(),
            attach: args.attach.or(file.attach).unwrap_or_default(),
            hook: args.attach_hook.or(file.attach_hook).unwrap_or_default(),
            blocklists: pick(&args.blocklists, file.blocklists),
            allowlist: args.allowlist.clone().or(file.allowlist),
            mode: args.mode.or(file.mode).unwrap_or_default(),
            metrics_addr: args
                .metrics_addr
                .or(file.metrics_addr)
                .unwrap_or_else(|| "127.0.0.1:9469".parse().expect("literal")),
            paths: Paths {
                pin_dir: args
                    .pin_dir
                    .clone()
                    .or(file.pin_dir)
                    .unwrap_or_else(|| DEFAULT_PIN_DIR.into()),
                state_dir: args
                    .state_dir
                    .clone()
                    .or(file.state_dir)
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            },
            detach_on_exit: args.detach_on_exit || file.detach_on_exit.unwrap_or(false),
            capacity: file.capacity,
            follow: {
                let f = file.follow.clone();
                if f.ttl_floor > f.ttl_ceiling {
                    return Err(AgentError::Setting(format!(
                        "[follow] ttl_floor ({}) is above ttl_ceiling ({})",
                        f.ttl_floor, f.ttl_ceiling
                    )));
                }
                f
            },
            coordinators: match c2wall_model::wire::url_list(args.coordinator.clone()) {
                flags if !flags.is_empty() => flags,
                _ => file
                    .coordinator
                    .clone()
                    .map(|u| u.into_list())
                    .unwrap_or_default(),
            },
            labels: {
                for (k, v) in &file.labels {
                    c2wall_model::labels::check_label(k, v)
                        .map_err(|e| AgentError::Setting(format!("labels: {e}")))?;
                }
                let mut l = file.labels.clone();
                l.extend(args.labels.iter().cloned());
                l
            },
            agent_id: {
                let cert = args.tls_cert.as_ref().or(file.tls_cert.as_ref());
                let named = cert_name(cert)?;
                match (args.agent_id.clone().or(file.agent_id), named) {
                    (Some(id), Some(n)) if id != n => {
                        return Err(AgentError::Setting(format!(
                            "agent_id `{id}`, but the certificate {} names `{n}`, which is what \
                             the coordinator knows this agent as: drop agent_id or use `{n}`",
                            cert.map(|p| p.display().to_string()).unwrap_or_default()
                        )))
                    }
                    (Some(id), _) => id,
                    (None, Some(n)) => n,
                    (None, None) => hostname(),
                }
            },
            sample_budget: args
                .sample_budget
                .or(file.sample_budget)
                .unwrap_or(c2wall_common::DEFAULT_SAMPLE_BUDGET),
            sightings_clear: args.sightings_clear || file.sightings_clear.unwrap_or(false),
            sightings_retention: args
                .sightings_retention
                .or(file.sightings_retention)
                .unwrap_or(168) as i64
                * 3600,
            sightings_max: args.sightings_max.or(file.sightings_max).unwrap_or(100_000),
            report_interval: args
                .report_interval
                .or(file.report_interval)
                .unwrap_or(10)
                .max(1),
            sync_unready_after: args
                .sync_unready_after
                .or(file.sync_unready_after)
                .unwrap_or(120)
                .max(1),
            token_file: args.token_file.clone().or(file.token_file),
            tls: c2wall_tls::ClientTls {
                ca: args.tls_ca.clone().or(file.tls_ca),
                cert: args.tls_cert.clone().or(file.tls_cert),
                key: args.tls_key.clone().or(file.tls_key),
                insecure: args.insecure || file.insecure.unwrap_or(false),
            },
            trust_keys: if args.trust_keys.is_empty() {
                file.trusted_keys
            } else {
                args.trust_keys.clone()
            },
            endpoints: Vec::new(),
            source,
        };
        if s.capacity.hits >= c2wall_common::SIDE_COUNTER_LIMIT {
            return Err(AgentError::Setting(format!(
                "capacity.hits = {} is above {}, the most counter slots a slot table's entry can name",
                s.capacity.hits,
                c2wall_common::SIDE_COUNTER_LIMIT - 1
            )));
        }
        if s.interfaces.is_empty() {
            return Err(AgentError::Setting(
                "no interface given: use --interface IFACE (repeatable) or `interfaces` in the config file".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &s.interfaces {
            if !seen.insert(i) {
                return Err(AgentError::Setting(format!(
                    "interface {i} is listed twice"
                )));
            }
        }
        c2wall_model::sign::Trust::from_hex(s.trust_keys.iter().map(String::as_str))
            .map_err(AgentError::Setting)?;
        for url in &s.coordinators {
            s.endpoints.push(
                s.tls
                    .endpoint(url)
                    .map_err(|e| AgentError::Setting(format!("{url}: {e}")))?,
            );
            if c2wall_tls::ClientTls::plaintext(url) {
                tracing::warn!(
                    url,
                    "--insecure: the coordinator is reached in plaintext; only --trust-key \
                     signatures protect the list"
                );
            }
        }
        if s.blocklists.is_empty() && s.coordinators.is_empty() {
            tracing::warn!("no blocklist given: enforcing an empty list");
        }
        Ok(s)
    }
}

/// The `pin_dir` an agent config file sets (None: the default).
pub fn pin_dir_of(path: &Path) -> Result<Option<PathBuf>, AgentError> {
    Ok(load_file(path)?.pin_dir)
}

/// The name in this agent's certificate, which the coordinator knows it by.
fn cert_name(cert: Option<&PathBuf>) -> Result<Option<String>, AgentError> {
    let Some(path) = cert else { return Ok(None) };
    let id =
        c2wall_tls::files::identity_of(path).map_err(|e| AgentError::Setting(e.to_string()))?;
    // Only an agent identity is bound to one agent id.
    Ok(id.filter(|i| i.role == "agent").map(|i| i.name))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "c2wall-agent".into())
}

#[cfg(test)]
mod tests;
