//! The sync bench's in-process agent: the agent crate's sync client on real
//! (unpinned) kernel maps, with TLS from the run's CA (made by [`make_pki`]).

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use c2wall_agent::{
    apply::Applier,
    combine::enforce,
    config::Capacity,
    engine::Engine,
    ids::Ids,
    loader,
    sync::{ApplyFn, SyncClient, SyncStatus, Synced, SyncedSet},
};
use c2wall_common::{MODE_ENFORCE, PROGRAM_NAME};
use c2wall_proto::v1 as pb;

/// Client TLS settings presenting certificate `name` from the run's CA.
pub fn tls(dir: &std::path::Path, name: &str) -> c2wall_tls::ClientTls {
    let pki = dir.join("pki");
    c2wall_tls::ClientTls {
        ca: Some(pki.join("ca.crt")),
        cert: Some(pki.join(format!("{name}.crt"))),
        key: Some(pki.join(format!("{name}.key"))),
        insecure: false,
    }
}

pub fn make_pki(dir: &std::path::Path) -> Result<()> {
    let pki = dir.join("pki");
    c2wall_tls::ca::init(&pki, 1)?;
    for (role, name) in [
        ("coordinator", "coord"),
        ("admin", "bench"),
        ("agent", "bench-agent"),
        ("downstream", "bench-isp"),
    ] {
        c2wall_tls::ca::issue(
            &pki,
            &c2wall_tls::ca::Request {
                identity: c2wall_tls::CertIdentity::new(role, name).map_err(anyhow::Error::msg)?,
                dns: vec![],
                ips: if role == "coordinator" {
                    vec!["127.0.0.1".parse()?]
                } else {
                    vec![]
                },
                days: 1,
            },
        )?;
    }
    Ok(())
}

pub async fn agent(
    urls: &[String],
    dir: &std::path::Path,
    status: Arc<SyncStatus>,
    state_file: std::path::PathBuf,
) -> Result<tokio::task::JoinHandle<()>> {
    let cap = Capacity::default();
    let mut ebpf = loader::load_unpinned(loader::OBJECT, PROGRAM_NAME)?;
    let maps = loader::take_maps(&mut ebpf, &cap)?;
    let mut applier = Applier::adopt(maps)?;
    applier.set_mode(MODE_ENFORCE)?;
    // Entry ids persisted as the daemon does (a journal append per delta).
    let ids_file = state_file.with_file_name("ids");
    let engine = Arc::new(Mutex::new((
        Engine::new(applier, Ids::new(), Some(ids_file)),
        ebpf,
    )));
    let none = Default::default();
    let apply: ApplyFn = Arc::new(move |set, changes| {
        let mut g = engine.lock().expect("lock");
        enforce(&mut g.0, &none, set, changes, &Default::default())?;
        Ok(pb::AgentStatus::default())
    });
    let synced = Synced::new(
        SyncedSet::default(),
        state_file,
        Default::default(),
        status.clone(),
        apply,
        Arc::new(|_| {}),
    );
    let client = SyncClient {
        labels: Default::default(),
        replicas: urls
            .iter()
            .map(|u| Ok((u.clone(), tls(dir, "bench-agent").endpoint(u)?)))
            .collect::<Result<_>>()?,
        agent_id: "bench-agent".into(),
        synced,
        report: Arc::new(pb::AgentStatus::default),
        status,
        backoff: (Duration::from_millis(50), Duration::from_secs(1)),
        bearer: Default::default(),
    };
    Ok(tokio::spawn(client.run()))
}

pub async fn wait_applied(
    status: &SyncStatus,
    version: u64,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    while status.applied_version.load(Ordering::Relaxed) < version {
        anyhow::ensure!(
            start.elapsed() < timeout,
            "version {version} not applied within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(start.elapsed())
}

/// Times `n` fresh agents, one after another, each taking the snapshot of
/// `version` from nothing into kernel maps of its own (its own state files
/// under `dir`, the client certificates of [`make_pki`]).
pub async fn fresh_snapshots(
    urls: &[String],
    dir: &std::path::Path,
    version: u64,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut took = Vec::new();
    for k in 0..n {
        let sub = dir.join(format!("again-{k}"));
        std::fs::create_dir_all(&sub)?;
        let status = Arc::new(SyncStatus::default());
        let task = agent(urls, dir, status.clone(), sub.join("agent-set.pb")).await?;
        let r = wait_applied(&status, version, Duration::from_secs(600)).await;
        task.abort();
        let _ = task.await;
        took.push(r?);
    }
    Ok(took)
}
