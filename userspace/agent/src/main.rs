//! `c2wall-agent`: enforce a C&C blocklist with XDP on this edge node.

mod commands;
mod daemon;
mod following;
mod interfaces;
mod observe;
mod reload;
mod shared;

use std::path::PathBuf;

use c2wall_agent::{
    config::RunArgs,
    paths::{DEFAULT_PIN_DIR, DEFAULT_STATE_DIR},
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "c2wall-agent",
    version,
    about = "Drop traffic to and from listed C&C servers with XDP, on this edge node.",
    long_about = "Drop traffic to and from listed C&C servers with XDP, on this edge node.\n\n\
        Loads the XDP program, attaches it to every --interface, pins program, maps and links \
        under --pin-dir, and keeps the kernel maps equal to the --blocklist files.\n\
        SIGHUP re-reads the files (and the config file) and applies only the difference. \
        SIGTERM exits and leaves enforcement in place: a restarted agent adopts the pins \
        with no gap. `c2wall-agent detach` removes everything.",
    after_help = "Examples:\n  \
        c2wall-agent -i eth0 -i eth1 -b /etc/c2wall/blocklist.txt --allowlist /etc/c2wall/allow.txt\n  \
        c2wall-agent --config /etc/c2wall/agent.toml\n  \
        c2wall-agent check -b /etc/c2wall/blocklist.txt\n  \
        c2wall-agent status\n  \
        c2wall-agent detach",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Detach the program from every interface and remove all pins. Enforcement stops.
    Detach {
        /// The pins to remove [default: pin_dir of --config, else /sys/fs/bpf/c2wall].
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Take the pin dir from this agent config file (the Debian package's
        /// removal script passes /etc/c2wall/agent.toml).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Mount bpffs on /sys/fs/bpf unless it is mounted (the Kubernetes
    /// DaemonSet's init step; needs CAP_SYS_ADMIN, which the agent does not).
    MountBpffs,
    /// Parse blocklist and allowlist files, report every bad line, change nothing.
    /// Exits 1 if any line was rejected.
    Check {
        #[arg(long = "blocklist", short = 'b', value_name = "FILE", required = true)]
        blocklists: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
    },
    /// Print mode, interfaces, counters and the entries with the most hits.
    Status {
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Where the agent keeps its entry ids (to name the top entries).
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Ask the running agent for its top entries by hits and the latest sampled
    /// drops (subscribers as the agent reports them: pseudonymised by default).
    Top {
        /// The running agent's --metrics-addr.
        #[arg(long, default_value = "127.0.0.1:9469")]
        metrics_addr: std::net::SocketAddr,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    c2wall_agent::engine::map_large_allocations();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Detach { pin_dir, config }) => commands::detach(pin_dir, config),
        Some(Command::Check {
            blocklists,
            allowlist,
        }) => commands::check(blocklists, allowlist),
        Some(Command::Status { pin_dir, state_dir }) => commands::status(pin_dir, state_dir),
        Some(Command::Top { metrics_addr, json }) => commands::top(metrics_addr, json),
        Some(Command::MountBpffs) => commands::mount_bpffs(),
        None => daemon::run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("c2wall-agent: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
