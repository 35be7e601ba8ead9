//! The command line: global flags and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{admin, feed};

#[derive(Parser)]
#[command(
    name = "c2wall",
    version,
    about = "Publish, withdraw and inspect the C&C blocklist on a c2wall coordinator.",
    after_help = "The coordinator URL and TLS files come from the flags, else their environment \
        variables, else the same names (`coordinator`, `tls_ca`, `tls_cert`, `tls_key`, \
        `insecure`) in ~/.config/c2wall/cli.toml or /etc/c2wall/cli.toml; the URL defaults to \
        https://127.0.0.1:50051.\n\nExamples:\n  \
        c2wall ca init --dir pki && c2wall ca issue --dir pki --role admin --name alice\n  \
        export C2WALL_TLS_CA=pki/ca.crt C2WALL_TLS_CERT=pki/alice.crt C2WALL_TLS_KEY=pki/alice.key\n  \
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
pub struct Cli {
    /// Coordinator URL, e.g. https://coordinator.example:50051. Repeat it
    /// (or separate URLs with commas, as C2WALL_COORDINATOR and cli.toml
    /// may) to name the centre's replicas: the first that answers is used.
    #[arg(
        long,
        global = true,
        env = "C2WALL_COORDINATOR",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub coordinator: Vec<String>,
    /// CA certificate that signed the coordinator's (PEM).
    #[arg(long, global = true, env = "C2WALL_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Your certificate (`c2wall ca issue`): your role and name at the
    /// coordinator.
    #[arg(long, global = true, env = "C2WALL_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Your certificate's private key.
    #[arg(long, global = true, env = "C2WALL_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Allow an http:// coordinator URL (no TLS): for a closed lab only.
    #[arg(long, global = true, env = "C2WALL_INSECURE")]
    pub insecure: bool,
    /// Who you are, recorded with every version you make [default: $USER].
    /// A coordinator that identifies callers (certificate or token) records
    /// that identity's name instead.
    #[arg(long, global = true, env = "C2WALL_ACTOR")]
    pub actor: Option<String>,
    /// Bearer token for a coordinator that checks roles
    /// (`c2wall-coordinator token`); prefer the environment variable.
    #[arg(long, global = true, env = "C2WALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Scope {
    /// Restrict to one protocol (needs --port).
    #[arg(long, value_parser = ["tcp", "udp"], requires = "port")]
    pub protocol: Option<String>,
    /// The C&C-side port (needs --protocol).
    #[arg(long, requires = "protocol")]
    pub port: Option<u16>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Add or update entries (one version, all or nothing).
    Publish {
        /// Prefixes (a bare address is a /32 or /128) or domains
        /// (`evil.example` is that name, `*.evil.example` the name and
        /// everything below it; served to resolvers as RPZ). Or use --file.
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
        /// Admin only, audited: send this version to every rollout stage at
        /// once, skipping the canaries' soak (an urgent entry). Versions held
        /// back in the stages go with it.
        #[arg(long)]
        expedite: bool,
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
    /// Which entries match an address or a DNS name, most specific first.
    Explain {
        /// An IP address, or a DNS name (which entries block it by name).
        address: String,
    },
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
    /// The protected allowlist: prefixes and domains no entry may overlap.
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
    /// The coordinator store's lineage. With --move-from, an admin's
    /// explicit, audited move of the fleet from an old lineage (a store that
    /// was replaced or restored) to this one: agents of the old lineage take
    /// this store's list only after it, even at a lower version.
    Lineage {
        /// The lineage agents hold now (32 hex digits, from `c2wall agents
        /// --json` or the agents' refusal alerts).
        #[arg(long, value_name = "HEX", requires_all = ["up_to_version", "reason"])]
        move_from: Option<String>,
        /// The highest version of the old lineage the move covers (an agent
        /// at a later version does not follow).
        #[arg(long, value_name = "VERSION")]
        up_to_version: Option<u64>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The staged rollout: `status` (the default) shows each stage's
    /// ceiling, soak and health signals; `resume` clears a freeze.
    Rollout {
        #[command(subcommand)]
        cmd: Option<crate::rollout::RolloutCommand>,
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
    /// A development certificate authority: `ca init`, then `ca issue` for
    /// the coordinator, each agent and each operator.
    Ca {
        #[command(subcommand)]
        cmd: crate::ca::CaCommand,
    },
}
