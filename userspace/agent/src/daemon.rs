//! The enforcing daemon: load, converge, attach, serve metrics, handle signals.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
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
    paths::Paths,
    source::{enforce, file::FileSource, identities, merge, BlocklistSource, Snapshot},
    sync::{ApplyFn, EntryChange, StatusFn, SyncClient, SyncStatus, SyncedSet},
    synced::journal_len,
    AgentError,
};
use c2wall_common::*;
use c2wall_proto::v1 as pb;
use tokio::signal::unix::{signal, SignalKind};

struct Shared {
    engine: Engine<KernelMaps>,
    settings: Settings,
    /// The command line, re-resolved against the config file on SIGHUP.
    args: RunArgs,
    /// The last good read of the local files, and the identities they list.
    files: Snapshot,
    local: std::collections::HashSet<c2wall_model::Identity>,
    /// The coordinator's set as last applied (empty without a coordinator).
    synced: SyncedSet,
    sync: Arc<SyncStatus>,
}

impl Shared {
    fn apply(&mut self, metrics: &Metrics) -> Result<(), AgentError> {
        let snap = merge(&self.files, &self.synced);
        let r = self.engine.sync(&snap);
        record(&self.engine, r, metrics)
    }

    /// A coordinator update: the whole set, or (after deltas) the entries that
    /// changed. Our copy of the set follows only if the kernel took it.
    fn apply_coordinator(
        &mut self,
        set: &SyncedSet,
        changes: Option<&[EntryChange]>,
        metrics: &Metrics,
    ) -> Result<(), AgentError> {
        let r = enforce(&mut self.engine, &self.files, &self.local, set, changes);
        record(&self.engine, r, metrics)?;
        match changes {
            Some(changes) => {
                for (id, e) in changes {
                    match e {
                        Some(e) => self.synced.entries.insert(*id, *e),
                        None => self.synced.entries.remove(id),
                    };
                }
                self.synced.version = set.version;
                self.synced.digest = set.digest;
            }
            None => self.synced = set.clone(),
        }
        Ok(())
    }

    fn status(&self) -> pb::AgentStatus {
        let c = self
            .engine
            .applier
            .dataplane()
            .counters()
            .unwrap_or_default();
        let sum = |v: u32| -> u64 {
            [DIR_TO_CC, DIR_FROM_CC]
                .iter()
                .flat_map(|d| {
                    [FAM_IDX_V4, FAM_IDX_V6].map(|f| verdict_counter(v, *d, f, UNIT_PACKETS))
                })
                .map(|i| c.get(i as usize).copied().unwrap_or(0))
                .sum()
        };
        let contact = self
            .sync
            .last_contact
            .load(std::sync::atomic::Ordering::Relaxed);
        pb::AgentStatus {
            agent_id: self.settings.agent_id.clone(),
            applied_version: self.synced.version,
            digest: self.synced.digest.to_bytes(),
            interfaces: self.settings.interfaces.clone(),
            mode: self.settings.mode.name().into(),
            entries: self.engine.ids().len() as u64,
            dropped_packets: sum(VERDICT_DROP),
            would_drop_packets: sum(VERDICT_WOULD_DROP),
            seconds_since_contact: if contact == 0 {
                u64::MAX
            } else {
                (unix_now() - contact).max(0) as u64
            },
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn run(args: RunArgs) -> Result<std::process::ExitCode> {
    let settings = Settings::resolve(&args)?;
    let args = args.clone();
    let paths = settings.paths.clone();
    std::fs::create_dir_all(&paths.state_dir)
        .with_context(|| format!("creating state dir {}", paths.state_dir.display()))?;

    // Every interface must exist before anything is attached: no half-attached
    // start because of a typo in the second name.
    for iface in &settings.interfaces {
        loader::interface_index(iface)?;
    }
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
    // Fail-static: the coordinator set persisted by the last run is enforced now,
    // before any contact with the coordinator.
    let synced = match &settings.coordinator {
        Some(_) => SyncedSet::load(&paths.synced_file())?.unwrap_or_default(),
        None => SyncedSet::default(),
    };
    if synced.version > 0 {
        tracing::info!(
            version = synced.version,
            entries = synced.entries.len(),
            "enforcing the persisted coordinator set"
        );
    }
    let files = match source.snapshot() {
        Ok(snap) => {
            report_rejected(&snap.rejected);
            let merged = merge(&snap, &synced);
            let r = engine.sync(&merged);
            record(&engine, r, &metrics)
                .context("applying the blocklist (the previous list stays enforced)")?;
            snap
        }
        Err(e) => {
            metrics.source_errors.inc();
            // Nothing readable: keep whatever the pinned maps enforce.
            tracing::error!(error = %e, "cannot read the blocklist; keeping the list already in the kernel");
            Snapshot::default()
        }
    };

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
        local: identities(&files),
        files,
        synced,
        sync: Arc::new(SyncStatus::default()),
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

/// Exports the outcome of an apply and logs it.
fn record(
    engine: &Engine<KernelMaps>,
    result: Result<c2wall_agent::engine::SyncReport, AgentError>,
    metrics: &Metrics,
) -> Result<(), AgentError> {
    match result {
        Ok(r) => {
            metrics.rejected_lines.set(r.rejected as i64);
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
            Err(e)
        }
    }
}

async fn serve(
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
) -> Result<std::process::ExitCode> {
    let (addr, sync) = {
        let s = shared.lock().expect("lock");
        (s.settings.metrics_addr, s.sync.clone())
    };
    let m = metrics.clone();
    // Only reached once the program is attached and a list applied; kept
    // lock-free so probes never wait behind a long reload.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                m.observe_sync(&sync);
                m.render()
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if ready.load(std::sync::atomic::Ordering::Relaxed) {
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

    let url = shared.lock().expect("lock").settings.coordinator.clone();
    if let Some(url) = url {
        let (sh, m) = (shared.clone(), metrics.clone());
        let apply: ApplyFn = Arc::new(move |set, changes| {
            let mut s = sh.lock().expect("lock");
            s.apply_coordinator(set, changes, &m)?;
            Ok(s.status())
        });
        let s = shared.lock().expect("lock");
        s.sync
            .applied_version
            .store(s.synced.version, std::sync::atomic::Ordering::Relaxed);
        let sh = shared.clone();
        let report: StatusFn = Arc::new(move || sh.lock().expect("lock").status());
        let client = SyncClient {
            url,
            agent_id: s.settings.agent_id.clone(),
            state_file: s.settings.paths.synced_file(),
            apply,
            report,
            status: s.sync.clone(),
            set: s.synced.clone(),
            backoff: (Duration::from_millis(200), Duration::from_secs(30)),
            journal_bytes: journal_len(&s.settings.paths.synced_file()),
        };
        tokio::spawn(client.run());
    }

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
    s.local = identities(&snap);
    s.files = snap;
    s.apply(metrics)
        .context("applying the blocklist (the previous list stays enforced)")
}
