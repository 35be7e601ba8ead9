//! Settings: command-line flags over a TOML file over defaults.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::error::AgentError;
use crate::paths::{Paths, DEFAULT_CONFIG, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Driver mode; fails on interfaces whose driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
    /// Native where the driver supports it, generic otherwise.
    #[default]
    Auto,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Drop packets that match drop entries.
    #[default]
    Enforce,
    /// Drop nothing; count what would have been dropped.
    Monitor,
    /// Pass everything without lookups (kill switch).
    Off,
}

impl From<c2wall_model::Mode> for ModeArg {
    fn from(m: c2wall_model::Mode) -> Self {
        match m {
            c2wall_model::Mode::Off => ModeArg::Off,
            c2wall_model::Mode::Monitor => ModeArg::Monitor,
            c2wall_model::Mode::Enforce => ModeArg::Enforce,
        }
    }
}

impl ModeArg {
    /// `off`, `monitor`, `enforce`.
    pub fn parse(s: &str) -> Option<Self> {
        ModeArg::from_str(s, true).ok()
    }
    pub fn code(self) -> u32 {
        match self {
            ModeArg::Enforce => c2wall_common::MODE_ENFORCE,
            ModeArg::Monitor => c2wall_common::MODE_MONITOR,
            ModeArg::Off => c2wall_common::MODE_OFF,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ModeArg::Enforce => "enforce",
            ModeArg::Monitor => "monitor",
            ModeArg::Off => "off",
        }
    }
}

/// Flags of the main (enforcing) command. Every flag can also be set in the
/// config file; a flag wins over the file.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Config file (TOML). Missing is fine for the default path, an error for an
    /// explicit one.
    #[arg(long, short = 'c', env = "C2WALL_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Interface to enforce on; repeat for several. XDP sees received packets, so
    /// list both the subscriber-facing and the upstream-facing interfaces.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// How to attach the XDP program.
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// Blocklist file; repeat for several. Syntax, one entry per line:
    /// `PREFIX [tcp|udp PORT] [drop|monitor] [to|from|both] [# comment]`.
    #[arg(long = "blocklist", short = 'b', value_name = "FILE")]
    pub blocklists: Vec<PathBuf>,
    /// Protected prefixes that are never dropped (one per line), checked before
    /// the blocklist.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Global mode.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Where /metrics, /healthz and /readyz are served [default: 127.0.0.1:9469].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Agent state (entry ids) [default: /var/lib/c2wall].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// bpffs directory for the pinned program, maps and links
    /// [default: /sys/fs/bpf/c2wall].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Detach and unpin on exit instead of leaving enforcement in place.
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Coordinator URL (e.g. https://coordinator:50051): the blocklist then
    /// follows the coordinator's; --blocklist files still apply on top (a local
    /// line wins over the coordinator's entry for the same prefix and port).
    /// Repeat it (or separate URLs with commas) to name the centre's
    /// replicas: when the one in use is unreachable or drops the stream, the
    /// agent moves to the next and resumes from its version.
    #[arg(
        long,
        env = "C2WALL_COORDINATOR",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub coordinator: Vec<String>,
    /// This agent's name at the coordinator [default: the name in --tls-cert,
    /// else the host name].
    #[arg(long, value_name = "NAME")]
    pub agent_id: Option<String>,
    /// A label for staged rollouts (repeatable): `--label role=canary
    /// --label site=tokyo-1`. The coordinator's `[[rollout.stage]]`
    /// selectors pick stages by them; they add to (and for the same key
    /// replace) `labels` in the config file.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label_arg)]
    pub labels: Vec<(String, String)>,
    /// Drop events sampled per CPU per second for sightings (0: none)
    /// [default: 100]. Events over the budget are counted, not sent.
    #[arg(long, value_name = "EVENTS")]
    pub sample_budget: Option<u32>,
    /// Report subscriber addresses in clear instead of keyed-hash pseudonyms
    /// (only where the ISP's legal basis allows it).
    #[arg(long)]
    pub sightings_clear: bool,
    /// Hours a sighting is kept after it was last seen [default: 168].
    #[arg(long, value_name = "HOURS")]
    pub sightings_retention: Option<u64>,
    /// Sightings kept in memory at most; the least recently seen go first
    /// [default: 100000].
    #[arg(long, value_name = "N")]
    pub sightings_max: Option<usize>,
    /// Seconds between sighting reports to the coordinator [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub report_interval: Option<u64>,
    /// /readyz fails once the agent has been unable to apply the
    /// coordinator's latest version for this long (a frame it cannot take, a
    /// refused version, a failing apply): long enough for a large snapshot,
    /// short enough to page someone [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub sync_unready_after: Option<u64>,
    /// The coordinator's version-signing public key (hex, from
    /// `c2wall-coordinator keygen`); repeat to trust several during a key
    /// rotation. With any, unsigned or wrongly signed versions are refused.
    #[arg(long = "trust-key", value_name = "HEX")]
    pub trust_keys: Vec<String>,
    /// File holding this agent's bearer token (role agent) for a coordinator
    /// that checks roles.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate that signed the coordinator's (PEM): needed for an
    /// https:// coordinator URL.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This agent's certificate (`c2wall ca issue --role agent --name NAME`):
    /// its identity at the coordinator.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow an http:// coordinator URL: the list arrives unencrypted and
    /// only --trust-key signatures protect it. A warning is logged.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    interfaces: Vec<String>,
    xdp_mode: Option<XdpModeArg>,
    #[serde(default)]
    blocklists: Vec<PathBuf>,
    allowlist: Option<PathBuf>,
    mode: Option<ModeArg>,
    metrics_addr: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    pin_dir: Option<PathBuf>,
    detach_on_exit: Option<bool>,
    /// One URL, several separated by commas, or an array.
    coordinator: Option<c2wall_model::wire::Urls>,
    agent_id: Option<String>,
    /// `labels = { site = "tokyo-1", role = "canary" }`
    #[serde(default)]
    labels: c2wall_model::Labels,
    sample_budget: Option<u32>,
    sightings_clear: Option<bool>,
    sightings_retention: Option<u64>,
    sightings_max: Option<usize>,
    report_interval: Option<u64>,
    sync_unready_after: Option<u64>,
    #[serde(default)]
    trusted_keys: Vec<String>,
    token_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure: Option<bool>,
    #[serde(default)]
    capacity: Capacity,
}

/// Map capacities (slots). Read when the maps are first created; changing them
/// later needs `c2wall-agent detach` first.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    pub nodes_v4: u32,
    pub nodes_v6: u32,
    pub ports: u32,
    pub hits: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            nodes_v4: c2wall_common::DEFAULT_NODES_V4_CAPACITY,
            nodes_v6: c2wall_common::DEFAULT_NODES_V6_CAPACITY,
            ports: c2wall_common::DEFAULT_PORTS_CAPACITY,
            hits: c2wall_common::DEFAULT_MAX_ENTRY_IDS,
        }
    }
}

/// The merged, validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeArg,
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

fn load_file(path: &Path) -> Result<FileConfig, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadFile {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| AgentError::Config {
        path: path.into(),
        message: e.to_string(),
    })
}

fn parse_label_arg(s: &str) -> Result<(String, String), String> {
    c2wall_model::labels::parse_label(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("c2wall-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("agent.toml");
        std::fs::write(
            &f,
            "interfaces = [\"eth0\"]\nmode = \"monitor\"\nblocklists = [\"/a\"]\n[capacity]\nports = 10\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(f.clone()),
            mode: Some(ModeArg::Off),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.interfaces, vec!["eth0"]);
        assert_eq!(s.mode, ModeArg::Off);
        assert_eq!(s.blocklists, vec![PathBuf::from("/a")]);
        assert_eq!(s.capacity.ports, 10);
        assert_eq!(
            s.capacity.nodes_v4,
            c2wall_common::DEFAULT_NODES_V4_CAPACITY
        );

        std::fs::write(&f, "interfaces = [\"eth0\"]\nmetrcs_addr = \"x\"\n").unwrap();
        let e = Settings::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("metrcs_addr") && e.contains("agent.toml"), "{e}");

        let none = RunArgs::default();
        assert!(Settings::resolve(&none)
            .unwrap_err()
            .to_string()
            .contains("--interface"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_documented_example_config_is_valid() {
        let args = RunArgs {
            config: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/agent.toml").into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.interfaces, vec!["eth0", "eth1"]);
        assert_eq!(s.capacity, Capacity::default());
        assert_eq!(s.paths.pin_dir, PathBuf::from(DEFAULT_PIN_DIR));
        assert_eq!(s.paths.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(s.metrics_addr.to_string(), "127.0.0.1:9469");
    }

    #[test]
    fn the_agent_id_is_the_certificate_name_and_a_different_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("c2wall-cfg-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        c2wall_tls::ca::init(&dir, 1).unwrap();
        c2wall_tls::ca::issue(
            &dir,
            &c2wall_tls::ca::Request {
                identity: c2wall_tls::CertIdentity::new("agent", "edge-7").unwrap(),
                dns: vec![],
                ips: vec![],
                days: 1,
            },
        )
        .unwrap();
        let mut args = RunArgs {
            interfaces: vec!["eth0".into()],
            coordinator: vec!["https://127.0.0.1:50051".into()],
            tls_ca: Some(dir.join("ca.crt")),
            tls_cert: Some(dir.join("edge-7.crt")),
            tls_key: Some(dir.join("edge-7.key")),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(&args).unwrap().agent_id, "edge-7");
        args.agent_id = Some("edge-8".into());
        let e = Settings::resolve(&args).unwrap_err().to_string();
        assert!(
            e.contains("edge-8") && e.contains("edge-7") && e.contains("edge-7.crt"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
