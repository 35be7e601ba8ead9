//! c2wall-bgp: the process edge. Loads the config and the last verified
//! list, starts BIRD with it, follows the coordinator, serves /metrics.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use c2wall_bgp::{config::Settings, exporter::Exporter, metrics::Metrics};
use c2wall_model::Entry;
use c2wall_subscriber::{ApplyFn, ModeFn, StatusFn, SyncClient, SyncStatus, Synced, SyncedSet};
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Announce the c2wall list to border routers: RTBH routes and Flowspec rules over BGP \
             (BIRD 2 does the BGP; this program configures, starts and supervises it).",
    after_help = "The config (deploy/bgp.toml documents every key) names the coordinator, this \
        speaker's AS and router id, and the peers. Drop entries only are announced; monitor \
        entries never. The centre's kill switch (`c2wall mode off|monitor`) withdraws everything, \
        `clear` announces again. BIRD outlives the exporter by a 5-second grace: a restart within \
        it adopts BIRD and the sessions never drop; after it BIRD goes without a Cease and peers \
        keep the routes for graceful_restart_time."
)]
struct Args {
    #[arg(long, short = 'c', default_value = "/etc/c2wall/bgp.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// (Internal) run BIRD and stop it once the exporter's heartbeat is
    /// older than the grace period; the exporter starts it.
    #[command(hide = true)]
    Watchdog {
        #[arg(long)]
        heartbeat: PathBuf,
        #[arg(last = true, required = true)]
        bird: Vec<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Cmd::Watchdog { heartbeat, bird }) = &args.cmd {
        return match c2wall_bgp::watchdog::run(heartbeat, bird) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let s = Settings::load(&args.config)?;
    std::fs::create_dir_all(&s.state_dir)
        .with_context(|| format!("state_dir {}", s.state_dir.display()))?;
    let metrics = Arc::new(Metrics::new()?);
    let state_file = s.state_dir.join("synced.pb");
    let saved = SyncedSet::<Entry>::load(&state_file)?.unwrap_or_default();
    let trust = c2wall_model::sign::Trust::from_hex(s.trust_keys.iter().map(String::as_str))
        .map_err(anyhow::Error::msg)?;
    let endpoints = s
        .coordinators
        .iter()
        .map(|u| s.tls.endpoint(u))
        .collect::<Result<Vec<_>, _>>()?;
    let bearer = match &s.token_file {
        None => c2wall_model::wire::Bearer::default(),
        Some(f) => c2wall_model::wire::Bearer::new(Some(&std::fs::read_to_string(f)?))
            .map_err(anyhow::Error::msg)?,
    };
    let (bird_bin, urls, id, metrics_addr) = (
        s.bird.clone(),
        s.coordinators.clone(),
        s.id.clone(),
        s.metrics_addr,
    );
    let mut ex = Exporter::new(s, metrics.clone());
    // The last verified list is announced from the start (fail-static).
    ex.prepare_with(saved.entries.values().cloned().collect())?;
    let (paths, birdc_bin) = (ex.paths.clone(), ex.settings.birdc.clone());
    let ex = Arc::new(Mutex::new(ex));
    if c2wall_bgp::bird::birdc(&birdc_bin, &paths, &["show", "status"]).is_ok() {
        // A BIRD from before a restart: adopted, its sessions never dropped.
        tracing::info!("adopting the running bird (its sessions stay up)");
        c2wall_bgp::watchdog::beat(&paths);
        c2wall_bgp::bird::reconfigure(&birdc_bin, &paths)?;
    } else {
        tracing::info!(
            version = saved.version,
            entries = saved.entries.len(),
            "starting bird"
        );
        c2wall_bgp::watchdog::start(&bird_bin, &paths, false)?;
    }
    wait_bird(&birdc_bin, &paths).await?;
    // Heartbeats keep the watchdog from stopping BIRD; a BIRD that died is
    // started again (its peers keep the routes for the graceful restart).
    std::thread::spawn(move || {
        let mut down = 0;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            c2wall_bgp::watchdog::beat(&paths);
            if c2wall_bgp::bird::birdc(&birdc_bin, &paths, &["show", "status"]).is_ok() {
                down = 0;
                continue;
            }
            down += 1;
            if down == 3 {
                tracing::error!("bird is not answering; starting it again");
                if let Err(e) = c2wall_bgp::watchdog::start(&bird_bin, &paths, true) {
                    tracing::error!(error = %e, "starting bird");
                }
            }
            if down > 10 {
                down = 0;
            }
        }
    });

    let status = Arc::new(SyncStatus::default());
    metrics.follow(status.clone());
    let (e1, e2, e3, m) = (ex.clone(), ex.clone(), ex.clone(), metrics.clone());
    let apply: ApplyFn<Entry> = Arc::new(move |set, _changes| {
        let mut g = e1.lock().expect("lock");
        g.apply(set.entries.values().cloned().collect())?;
        m.applied_version.set(set.version as i64);
        Ok(g.status())
    });
    let on_mode: ModeFn = Arc::new(move |mode| {
        if let Err(e) = e2.lock().expect("lock").set_centre_mode(mode) {
            tracing::error!(error = %e, "applying the centre's kill switch");
        }
    });
    let report: StatusFn = Arc::new(move || e3.lock().expect("lock").status());
    let synced = Synced::new(saved, state_file, trust, status.clone(), apply, on_mode);
    let client = SyncClient {
        replicas: urls.into_iter().zip(endpoints).collect(),
        agent_id: id,
        labels: Default::default(),
        synced,
        report,
        status,
        backoff: (Duration::from_millis(200), Duration::from_secs(30)),
        bearer,
    };
    tokio::spawn(client.run());

    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move { m.render() }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .with_context(|| format!("metrics_addr {metrics_addr}"))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    tracing::info!(%metrics_addr, "serving /metrics");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // BIRD stays for the watchdog's grace: a restart within it (an upgrade)
    // adopts it and the sessions never drop; otherwise it goes without a
    // Cease and peers hold the routes for their graceful-restart time.
    tracing::info!(
        grace_seconds = c2wall_bgp::watchdog::GRACE_SECONDS,
        "stopping; bird stays for the grace period, for a restart to adopt"
    );
    Ok(())
}

/// Waits until BIRD answers on its control socket (it has read its config).
async fn wait_bird(birdc: &std::path::Path, paths: &c2wall_bgp::bird::Paths) -> Result<()> {
    for _ in 0..100 {
        if c2wall_bgp::bird::birdc(birdc, paths, &["show", "status"]).is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("bird did not answer on its control socket within 10 s")
}
