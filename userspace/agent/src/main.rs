//! `c2wall-agent`: enforce a C&C blocklist with XDP on this edge node.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use axum::{routing::get, Router};
use c2wall_agent::{
    apply::Applier,
    config::{RunArgs, Settings},
    dataplane::Dataplane,
    engine::Engine,
    ids::Ids,
    kernel::KernelMaps,
    loader,
    metrics::{CounterReader, Metrics},
    paths::{Paths, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR},
    source::{file::FileSource, BlocklistSource},
};
use c2wall_common::*;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

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
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Detach { pin_dir }) => detach(pin_dir),
        Some(Command::Check {
            blocklists,
            allowlist,
        }) => check(blocklists, allowlist),
        Some(Command::Status { pin_dir, state_dir }) => status(pin_dir, state_dir),
        None => run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("c2wall-agent: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn detach(pin_dir: PathBuf) -> Result<std::process::ExitCode> {
    let paths = Paths {
        pin_dir,
        state_dir: DEFAULT_STATE_DIR.into(),
    };
    let gone = loader::detach_all(&paths)?;
    println!(
        "detached from {} interface(s){}{}; pins removed from {}",
        gone.len(),
        if gone.is_empty() { "" } else { ": " },
        gone.join(", "),
        paths.pin_dir.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn check(blocklists: Vec<PathBuf>, allowlist: Option<PathBuf>) -> Result<std::process::ExitCode> {
    let snap = FileSource {
        blocklists,
        allowlist,
    }
    .snapshot()?;
    for r in &snap.rejected {
        println!("rejected {r}");
    }
    let v4 = snap
        .entries
        .iter()
        .filter(|e| e.prefix.family() == c2wall_model::Family::V4)
        .count();
    let scoped = snap.entries.iter().filter(|e| e.scope.is_some()).count();
    println!(
        "{} entries ({} IPv4, {} IPv6, {} port-scoped), {} protected prefixes, {} rejected lines",
        snap.entries.len(),
        v4,
        snap.entries.len() - v4,
        scoped,
        snap.allow.len(),
        snap.rejected.len()
    );
    Ok(if snap.rejected.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

fn status(pin_dir: PathBuf, state_dir: PathBuf) -> Result<std::process::ExitCode> {
    let paths = Paths { pin_dir, state_dir };
    let maps = KernelMaps::from_pins(&paths.maps_dir()).with_context(|| {
        format!(
            "no c2wall maps pinned under {} (is the agent running?)",
            paths.maps_dir().display()
        )
    })?;
    let cfg = maps.read_config()?;
    let mode = match cfg.mode {
        MODE_ENFORCE => "enforce",
        MODE_MONITOR => "monitor",
        _ => "off",
    };
    let links: Vec<String> = std::fs::read_dir(paths.links_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    println!("mode: {mode}");
    println!("interfaces: {}", links.join(", "));
    println!("active rule set: {}", cfg.active_set);
    let c = maps.counters()?;
    let sum = |v: u32, d: u32, unit: u32| -> u64 {
        (0..2)
            .map(|f| c[verdict_counter(v, d, f, unit) as usize])
            .sum()
    };
    println!("{:<14} {:>14} {:>16}", "verdict", "packets", "bytes");
    for (name, v, dirs) in [
        ("pass", VERDICT_PASS, &[DIR_TO_CC][..]),
        ("drop", VERDICT_DROP, &[DIR_TO_CC, DIR_FROM_CC][..]),
        (
            "would_drop",
            VERDICT_WOULD_DROP,
            &[DIR_TO_CC, DIR_FROM_CC][..],
        ),
        (
            "allowlisted",
            VERDICT_ALLOWLISTED,
            &[DIR_TO_CC, DIR_FROM_CC][..],
        ),
    ] {
        let p: u64 = dirs.iter().map(|d| sum(v, *d, UNIT_PACKETS)).sum();
        let b: u64 = dirs.iter().map(|d| sum(v, *d, UNIT_BYTES)).sum();
        println!("{name:<14} {p:>14} {b:>16}");
    }
    println!(
        "non-IP {}, parse errors {}, passed while off {}, non-first fragments {}",
        c[CNT_NON_IP as usize],
        c[CNT_PARSE_ERROR as usize],
        c[CNT_MODE_OFF as usize],
        c[CNT_FRAGMENT as usize]
    );
    let hits = maps.hits()?;
    let mut top: Vec<_> = hits.into_iter().collect();
    top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    if !top.is_empty() {
        let ids = Ids::load(&paths.ids_file())
            .unwrap_or_default()
            .identity_of();
        println!("top entries by hits:");
        for (id, n) in top.into_iter().take(10) {
            let name = ids
                .get(&id)
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("entry #{id}"));
            println!("  {n:>12}  {name}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

struct Shared {
    engine: Engine<KernelMaps>,
    settings: Settings,
    /// The command line, re-resolved against the config file on SIGHUP.
    args: RunArgs,
    ready: bool,
}

fn run(args: RunArgs) -> Result<std::process::ExitCode> {
    let settings = Settings::resolve(&args)?;
    let args = args.clone();
    let paths = settings.paths.clone();
    std::fs::create_dir_all(&paths.state_dir)
        .with_context(|| format!("creating state dir {}", paths.state_dir.display()))?;

    let (mut ebpf, maps) = loader::load(&paths, &settings.capacity)?;
    let mut applier = Applier::adopt(maps)?;
    applier.set_mode(settings.mode.code())?;
    let ids = Ids::load(&paths.ids_file())?;
    let mut engine = Engine::new(applier, ids, Some(paths.ids_file()));

    // Converge the maps before touching any link: an adopted link keeps enforcing
    // the previous list until the new one is complete.
    let counters = counter_reader(&paths)?;
    let metrics = Arc::new(Metrics::new(counters)?);
    metrics.set_mode(settings.mode.name());
    let mut source = FileSource {
        blocklists: settings.blocklists.clone(),
        allowlist: settings.allowlist.clone(),
    };
    match source.snapshot() {
        Ok(snap) => {
            report_rejected(&snap.rejected);
            apply(&mut engine, &snap, &metrics)?;
        }
        Err(e) => {
            metrics.source_errors.inc();
            // Nothing readable: keep whatever the pinned maps enforce.
            tracing::error!(error = %e, "cannot read the blocklist; keeping the list already in the kernel");
        }
    }

    for iface in &settings.interfaces {
        let a = loader::attach(&mut ebpf, &paths, iface, settings.xdp_mode)?;
        tracing::info!(interface = %a.interface, xdp_mode = a.mode, adopted = a.adopted, "attached");
        metrics
            .attached
            .with_label_values(&[&a.interface, a.mode])
            .set(1);
    }
    for gone in loader::detach_stale(&paths, &settings.interfaces) {
        tracing::warn!(interface = %gone, "detached from an interface that is no longer configured");
    }
    loader::pin_program(&mut ebpf, &paths)?;
    for old in loader::remove_stale_maps(&paths) {
        tracing::info!(path = %old.display(), "removed maps of an older map layout");
    }

    let shared = Arc::new(Mutex::new(Shared {
        engine,
        settings,
        args,
        ready: true,
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = rt.block_on(serve(shared.clone(), metrics))?;
    let s = shared.lock().expect("lock");
    if s.settings.detach_on_exit {
        let gone = loader::detach_all(&s.settings.paths)?;
        tracing::info!(interfaces = ?gone, "detached on exit as configured");
    } else {
        tracing::info!("exiting; the XDP program stays attached and enforcing");
    }
    drop(ebpf);
    Ok(code)
}

fn counter_reader(paths: &Paths) -> Result<CounterReader> {
    let maps = Mutex::new(KernelMaps::from_pins(&paths.maps_dir())?);
    Ok(Arc::new(move || maps.lock().expect("lock").counters()))
}

fn report_rejected(rejected: &[c2wall_agent::source::Rejected]) {
    for r in rejected {
        tracing::warn!("rejected {r}");
    }
}

fn apply(
    engine: &mut Engine<KernelMaps>,
    snap: &c2wall_agent::source::Snapshot,
    metrics: &Metrics,
) -> Result<()> {
    metrics.rejected_lines.set(snap.rejected.len() as i64);
    match engine.sync(snap) {
        Ok(r) => {
            let kind = if r.stats.reload { "reload" } else { "in_place" };
            metrics.applies.with_label_values(&[kind]).inc();
            metrics
                .last_apply_duration
                .set(r.stats.elapsed.as_secs_f64());
            metrics.last_apply_timestamp.set(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            );
            metrics.entries.reset();
            for ((f, a), n) in &r.by_kind {
                metrics
                    .entries
                    .with_label_values(&[f.name(), &a.to_string()])
                    .set(*n as i64);
            }
            metrics.allowlist_prefixes.set(r.allow as i64);
            let active = engine.applier.active();
            let (v4, v6, ports) = active.slot_counts();
            let (c4, c6, cp) = engine.applier.dataplane().capacity();
            for (name, used, cap) in [
                (MAP_NODES_V4, v4, c4),
                (MAP_NODES_V6, v6, c6),
                (MAP_PORTS, ports, cp),
            ] {
                metrics.slots.with_label_values(&[name]).set(used as i64);
                metrics
                    .slot_capacity
                    .with_label_values(&[name])
                    .set(cap as i64);
            }
            tracing::info!(
                entries = r.entries,
                allowlist = r.allow,
                rejected = r.rejected,
                kind,
                writes = r.stats.writes,
                deletes = r.stats.deletes,
                ms = r.stats.elapsed.as_millis() as u64,
                "blocklist applied"
            );
            Ok(())
        }
        Err(e) => {
            metrics.apply_errors.inc();
            Err(e).context("applying the blocklist (the previous list stays enforced)")
        }
    }
}

async fn serve(
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
) -> Result<std::process::ExitCode> {
    let addr = shared.lock().expect("lock").settings.metrics_addr;
    let m = metrics.clone();
    let ready = shared.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { m.render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if ready.lock().map(|s| s.ready).unwrap_or(false) {
                    (axum::http::StatusCode::OK, "ready\n")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let shared = shared.clone();
                let metrics = metrics.clone();
                // Applying does blocking syscalls; keep it off the async workers.
                let r = tokio::task::spawn_blocking(move || reload(&shared, &metrics)).await;
                if let Ok(Err(e)) = r {
                    tracing::error!("reload failed: {e:#}");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    server.abort();
    Ok(std::process::ExitCode::SUCCESS)
}

/// SIGHUP: re-read the config file (mode, files) and the lists; apply the difference.
fn reload(shared: &Mutex<Shared>, metrics: &Metrics) -> Result<()> {
    let mut s = shared.lock().expect("lock");
    if s.settings.source.is_some() {
        match Settings::resolve(&s.args) {
            Ok(new) => {
                s.settings.mode = new.mode;
                s.settings.blocklists = new.blocklists;
                s.settings.allowlist = new.allowlist;
            }
            Err(e) => tracing::error!("keeping the previous settings: {e}"),
        }
    }
    let mode = s.settings.mode;
    s.engine.applier.set_mode(mode.code())?;
    metrics.set_mode(mode.name());
    let mut source = FileSource {
        blocklists: s.settings.blocklists.clone(),
        allowlist: s.settings.allowlist.clone(),
    };
    let snap = match source.snapshot() {
        Ok(snap) => snap,
        Err(e) => {
            metrics.source_errors.inc();
            return Err(e).context("re-reading the lists (the previous list stays enforced)");
        }
    };
    report_rejected(&snap.rejected);
    apply(&mut s.engine, &snap, metrics)
}
