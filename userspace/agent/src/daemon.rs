//! The enforcing daemon: load, converge, attach, serve metrics, handle signals.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{routing::get, Router};
use aya::maps::{MapData, RingBuf};
use c2wall_agent::{
    apply::Applier,
    combine::merge,
    config::{ModeArg, RunArgs, Settings},
    engine::Engine,
    events::{read_events, report_sightings},
    ids::Ids,
    loader,
    metrics::Metrics,
    ring::open_pinned,
    sightings::{load_or_create_key, Sightings},
    source::{file::FileSource, BlocklistSource, Files},
    sync::{ApplyFn, ModeFn, StatusFn, SyncClient, SyncStatus, Synced, SyncedHandle, SyncedSet},
};
use c2wall_common::{MAP_DNS_ANSWERS, MAP_EVENTS};
use tokio::signal::unix::{signal, SignalKind};

use crate::observe::{counter_reader, link_pinned, record, top_json};
use crate::reload::{reload, report_rejected};
use crate::shared::Shared;

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
    let (mut ebpf, maps) = loader::load(&paths, &settings.capacity, settings.hook)?;
    let mut applier = Applier::adopt(maps)?;
    // The centre's kill switch survives restarts (and a reboot without the
    // coordinator).
    let mode_override = std::fs::read_to_string(paths.mode_override_file())
        .ok()
        .and_then(|m| ModeArg::parse(m.trim()));
    let mode = mode_override.unwrap_or(settings.mode);
    if let Some(m) = mode_override {
        tracing::warn!(
            mode = m.name(),
            "the coordination centre's mode override is in force"
        );
    }
    applier.set_mode(mode.code())?;
    applier.set_sample_budget(settings.sample_budget)?;
    let ids = Ids::load(&paths.ids_file())?;
    let mut engine = Engine::new(applier, ids, Some(paths.ids_file()));
    engine.set_following(settings.follow.enabled);

    // Converge the maps before touching any link: an adopted link keeps enforcing
    // the previous list until the new one is complete.
    // Counter slot -> interface name, filled in once attached.
    let iface_names: Arc<Mutex<HashMap<u32, String>>> = Arc::default();
    let counters = counter_reader(&paths, iface_names.clone())?;
    let metrics = Arc::new(Metrics::new(counters)?);
    metrics.set_mode(mode.name());
    let mut source = FileSource {
        blocklists: settings.blocklists.clone(),
        allowlist: settings.allowlist.clone(),
    };
    // Fail-static: the coordinator set persisted by the last run is enforced now,
    // before any contact with the coordinator.
    let mut synced = if settings.coordinators.is_empty() {
        SyncedSet::default()
    } else {
        SyncedSet::load(&paths.synced_file())?.unwrap_or_default()
    };
    // The kernel's record of what the pinned maps hold wins over a saved
    // list that lags it (see sync::behind_kernel).
    let (kernel_version, kernel_lineage) = engine.applier.synced();
    let kernel_ahead = !settings.coordinators.is_empty()
        && c2wall_agent::sync::behind_kernel(&synced, kernel_version, &kernel_lineage);
    if kernel_ahead {
        tracing::warn!(
            kernel_version,
            saved_version = synced.version,
            "the kernel enforces a newer coordinator list than the saved one: keeping the \
             kernel's list until the coordinator's snapshot arrives"
        );
        synced = SyncedSet::placeholder(kernel_version, &kernel_lineage);
    }
    if synced.version > 0 && !kernel_ahead {
        tracing::info!(
            version = synced.version,
            entries = synced.entries.len(),
            "enforcing the persisted coordinator set"
        );
    }
    let files = match source.snapshot() {
        Ok(snap) if kernel_ahead => {
            report_rejected(&snap.rejected);
            Files::new(snap)
        }
        Ok(snap) => {
            report_rejected(&snap.rejected);
            let files = Files::new(snap);
            let merged = merge(&files, &synced, &Default::default());
            let r = engine.sync(&merged);
            drop(merged);
            record(&engine, r, &metrics, "full")
                .context("applying the blocklist (the previous list stays enforced)")?;
            engine.applier.set_synced(synced.version, &synced.lineage)?;
            files
        }
        Err(e) => {
            metrics.source_errors.inc();
            // Nothing readable: keep whatever the pinned maps enforce.
            tracing::error!(error = %e, "cannot read the blocklist; keeping the list already in the kernel");
            Files::default()
        }
    };

    let attached =
        crate::interfaces::hold(&mut ebpf, &settings, &mut engine, &metrics, &iface_names)?;
    loader::pin_program(&mut ebpf, &paths, settings.hook)?;
    for old in loader::remove_stale_maps(&paths) {
        tracing::info!(path = %old.display(), "removed maps of an older map layout");
    }

    let follow_limits = settings.follow.clone();
    let shared = Arc::new(Mutex::new(Shared {
        engine,
        settings,
        args,
        attached,
        mode_override,
        files,
        kernel_ahead,
        // A kernel ahead of the saved list means the saved one is stale.
        sync: Arc::new(SyncStatus {
            disk_stale: kernel_ahead.into(),
            ..Default::default()
        }),
        followed: c2wall_agent::follow::table::Followed::new(follow_limits),
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let key = load_or_create_key(&paths.sightings_key())?;
    let sightings = {
        let s = &shared.lock().expect("lock").settings;
        Arc::new(Mutex::new(Sightings::new(
            key,
            s.sightings_clear,
            s.sightings_retention,
            s.sightings_max,
        )))
    };
    let rings = Rings {
        events: open_pinned(&paths, MAP_EVENTS, "no sightings"),
        answers: open_pinned(&paths, MAP_DNS_ANSWERS, "DNS answers are not followed"),
    };
    let code = rt.block_on(serve(shared.clone(), metrics, sightings, rings, synced))?;
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

/// The program's ring buffers: sampled drops, DNS answers.
struct Rings {
    events: Option<RingBuf<MapData>>,
    answers: Option<RingBuf<MapData>>,
}

async fn serve(
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    sightings: Arc<Mutex<Sightings>>,
    rings: Rings,
    synced: SyncedSet,
) -> Result<std::process::ExitCode> {
    let (addr, sync) = {
        let s = shared.lock().expect("lock");
        (s.settings.metrics_addr, s.sync.clone())
    };
    if let Some(ring) = rings.events {
        tokio::spawn(read_events(ring, sightings.clone()));
    }
    let m = metrics.clone();
    let sg = sightings.clone();
    let (attached, link_dir) = {
        let s = shared.lock().expect("lock");
        (s.attached.clone(), s.settings.paths.clone())
    };
    // Only reached once the program is attached and a list applied; kept
    // lock-free so probes never wait behind a long reload. With a
    // coordinator, an agent that has been unable to apply its latest version
    // for too long is not ready: it enforces an old list.
    let unready_after = {
        let s = shared.lock().expect("lock");
        (!s.settings.coordinators.is_empty()).then_some(s.settings.sync_unready_after)
    };
    let ready_sync = sync.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                m.observe_sync(&sync);
                m.sightings.set(sg.lock().expect("lock").len() as i64);
                // A link removed behind our back (ip link set dev X xdp off,
                // bpftool) shows as 0.
                for (iface, mode) in &attached {
                    let up = link_pinned(&link_dir, iface);
                    m.attached
                        .with_label_values(&[iface.as_str(), mode])
                        .set(up as i64);
                }
                m.render()
            }),
        )
        .route("/top", {
            let (sh, sg) = (shared.clone(), sightings.clone());
            get(move || async move {
                let sh = sh.clone();
                let sg = sg.clone();
                tokio::task::spawn_blocking(move || {
                    let s = sh.lock().expect("lock");
                    top_json(&s.engine, &s.followed, &sg)
                })
                .await
                .unwrap_or_default()
            })
        })
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                let behind = ready_sync.behind_seconds(c2wall_agent::sync::unix_now());
                match unready_after {
                    Some(limit) if behind > limit => {
                        use std::sync::atomic::Ordering::Relaxed;
                        let why = ready_sync.last_error.lock().expect("lock").clone();
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            format!(
                                "not ready: version {} applied, the coordinator is at {} and \
                                 this agent has been unable to apply it for {behind}s: {why}\n",
                                ready_sync.applied_version.load(Relaxed),
                                ready_sync.latest_version.load(Relaxed),
                            ),
                        )
                    }
                    _ => (axum::http::StatusCode::OK, "ready\n".to_string()),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The coordinator's set, once its owner exists (None: no coordinator).
    let mut coordinator: Option<SyncedHandle> = None;
    let urls = shared.lock().expect("lock").settings.coordinators.clone();
    if !urls.is_empty() {
        let (sh, m) = (shared.clone(), metrics.clone());
        let apply: ApplyFn = Arc::new(move |set, changes| {
            let mut s = sh.lock().expect("lock");
            s.apply_coordinator(set, changes, &m)?;
            Ok(s.status())
        });
        let s = shared.lock().expect("lock");
        let sh = shared.clone();
        let report: StatusFn = Arc::new(move || sh.lock().expect("lock").status());
        let bearer = match &s.settings.token_file {
            None => c2wall_model::wire::Bearer::default(),
            Some(f) => {
                let t = std::fs::read_to_string(f)
                    .with_context(|| format!("reading the token file {}", f.display()))?;
                c2wall_model::wire::Bearer::new(Some(&t))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
            }
        };
        let identity = {
            let sh = shared.clone();
            Arc::new(move |ids: &[u32]| {
                let s = sh.lock().expect("lock");
                s.engine.identities(ids.iter().copied())
            })
        };
        let endpoints = s.settings.endpoints.clone();
        let m = metrics.clone();
        tokio::spawn(report_sightings(
            endpoints.clone(),
            s.settings.agent_id.clone(),
            Duration::from_secs(s.settings.report_interval),
            sightings.clone(),
            identity,
            Arc::new(move |n| m.sightings_reported.inc_by(n as u64)),
            bearer.clone(),
        ));
        let on_mode: ModeFn = {
            let (sh, m) = (shared.clone(), metrics.clone());
            Arc::new(move |mode| sh.lock().expect("lock").set_override(mode, &m))
        };
        let trust =
            c2wall_model::sign::Trust::from_hex(s.settings.trust_keys.iter().map(String::as_str))
                .map_err(anyhow::Error::msg)?;
        let handle = Synced::new(
            synced,
            s.settings.paths.synced_file(),
            trust,
            s.sync.clone(),
            apply,
            on_mode,
        );
        let client = SyncClient {
            replicas: urls.into_iter().zip(endpoints).collect(),
            agent_id: s.settings.agent_id.clone(),
            labels: s.settings.labels.clone(),
            synced: handle.clone(),
            report,
            status: s.sync.clone(),
            backoff: (Duration::from_millis(200), Duration::from_secs(30)),
            bearer,
        };
        tokio::spawn(client.run());
        coordinator = Some(handle);
    }

    crate::following::spawn(rings.answers, &shared, coordinator.as_ref(), &metrics);

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let shared = shared.clone();
                let metrics = metrics.clone();
                let synced = coordinator.clone();
                // Applying does blocking syscalls; keep it off the async workers.
                let r = tokio::task::spawn_blocking(move || reload(&shared, synced.as_ref(), &metrics)).await;
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
