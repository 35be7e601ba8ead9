//! The command-line flags of `c2wall-agent run`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use super::values::{AttachArg, HookArg, ModeArg, XdpModeArg};

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
    /// How to attach the XDP program [default: auto].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// Share the interface with other XDP programs or not [default: auto].
    #[arg(long, value_enum)]
    pub attach: Option<AttachArg>,
    /// The hook: xdp, or tc ingress where XDP cannot attach [default: xdp].
    #[arg(long, value_enum)]
    pub attach_hook: Option<HookArg>,
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

fn parse_label_arg(s: &str) -> Result<(String, String), String> {
    c2wall_model::labels::parse_label(s).map_err(|e| e.to_string())
}
