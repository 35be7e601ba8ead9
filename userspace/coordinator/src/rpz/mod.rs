//! The effective domain entries as a Response Policy Zone for the ISP's
//! resolvers: served over AXFR and IXFR (SOA serial = version), NOTIFY to
//! the configured secondaries on each version, TSIG required except from
//! `allow_transfer` addresses.
//!
//! One owner of the zone ([`zone::Zone`]), fed from the version log; the
//! server only reads it.

pub mod config;
pub mod key;
mod messages;
pub mod metrics;
pub mod server;
pub mod tsig;
pub mod zone;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;

use crate::core::{Coordinator, OnCommit};
use crate::error::CoordError;
use config::Rpz;
use metrics::RpzMetrics;
use server::Server;
use zone::Zone;

/// Wakes the zone updater on every committed version.
struct Wake(Arc<Notify>);

impl OnCommit for Wake {
    fn committed(&self, _version: u64, _delta: &[u8]) {
        self.0.notify_one();
    }
}

/// How long NOTIFY waits for an answer before trying again (3 tries).
const NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// Binds the listeners (failing here names the address), loads the zone
/// and runs the server and the updater until the tasks are dropped.
pub async fn start(
    coord: Arc<Coordinator>,
    cfg: Rpz,
    metrics: Arc<RpzMetrics>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, CoordError> {
    let cfg = Arc::new(cfg);
    let bind = |e: std::io::Error| CoordError::Setting(format!("[rpz] listen {}: {e}", cfg.listen));
    let tcp = TcpListener::bind(cfg.listen).await.map_err(bind)?;
    let udp = UdpSocket::bind(cfg.listen).await.map_err(bind)?;
    let (version, names) = coord.rpz_set(cfg.ip_triggers);
    let zone = Arc::new(RwLock::new(Zone::new(&cfg, version, names)));
    publish_gauges(&zone, &metrics);
    let server = Arc::new(Server {
        cfg: cfg.clone(),
        zone: zone.clone(),
        metrics: metrics.clone(),
    });
    let wake = Arc::new(Notify::new());
    coord.on_commit(Arc::new(Wake(wake.clone())));
    tracing::info!(listen = %cfg.listen, zone = %cfg.zone, serial = version, "serving the RPZ zone");
    Ok(vec![
        tokio::spawn(server.clone().serve_tcp(tcp)),
        tokio::spawn(server.serve_udp(udp)),
        tokio::spawn(update(coord, cfg, zone, metrics, wake)),
    ])
}

fn publish_gauges(zone: &RwLock<Zone>, m: &RpzMetrics) {
    let z = zone.read().expect("lock");
    m.serial.set(messages::serial(z.version) as i64);
    m.names.set(z.names() as i64);
    m.records.set(z.size() as i64);
}

/// Brings the zone to each new version (from the log; a reload when the log
/// no longer reaches back) and tells the secondaries.
async fn update(
    coord: Arc<Coordinator>,
    cfg: Arc<Rpz>,
    zone: Arc<RwLock<Zone>>,
    metrics: Arc<RpzMetrics>,
    wake: Arc<Notify>,
) {
    // NOTIFY at start too: a secondary that missed versions while this
    // coordinator was down asks at once instead of at its next refresh.
    let start = zone.read().expect("lock").version;
    notify_all(&cfg, start, &metrics);
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let at = zone.read().expect("lock").version;
        if coord.latest_version() == at {
            continue;
        }
        let (c, z, k) = (coord.clone(), zone.clone(), cfg.clone());
        let moved = tokio::task::spawn_blocking(move || catch_up(&c, &k, &z, at)).await;
        match moved {
            Ok(Ok(v)) if v != at => {
                publish_gauges(&zone, &metrics);
                notify_all(&cfg, v, &metrics);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "RPZ zone update failed; retrying"),
            Err(e) => tracing::error!(error = %e, "RPZ zone update panicked; retrying"),
        }
    }
}

fn catch_up(
    coord: &Coordinator,
    cfg: &Rpz,
    zone: &RwLock<Zone>,
    at: u64,
) -> Result<u64, CoordError> {
    // The whole zone again from the set (its journal starts over).
    let reload = |why: &str| {
        let (version, names) = coord.rpz_set(cfg.ip_triggers);
        tracing::info!(from = at, to = version, why, "RPZ zone reloaded");
        *zone.write().expect("lock") = Zone::new(cfg, version, names);
        Ok(version)
    };
    let Some(deltas) = coord.deltas_after(at)? else {
        return reload("the log no longer reaches back");
    };
    let mut z = zone.write().expect("lock");
    for d in &deltas {
        if let Err(e) = z.apply(cfg, d) {
            drop(z);
            return reload(&e.to_string());
        }
    }
    Ok(z.version)
}

/// NOTIFY every secondary, each on its own task: one that is down must not
/// delay the others, nor the next version.
fn notify_all(cfg: &Arc<Rpz>, version: u64, metrics: &Arc<RpzMetrics>) {
    for target in cfg.notify.clone() {
        let (cfg, metrics) = (cfg.clone(), metrics.clone());
        tokio::spawn(async move {
            let acked = notify_one(&cfg, target, version).await;
            let result = if acked { "acknowledged" } else { "unanswered" };
            metrics.notifies.with_label_values(&[result]).inc();
            if !acked {
                tracing::warn!(%target, serial = version, "NOTIFY unanswered after 3 tries");
            }
        });
    }
}

async fn notify_one(cfg: &Rpz, target: std::net::SocketAddr, version: u64) -> bool {
    let bind: std::net::SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let Ok(sock) = UdpSocket::bind(bind).await else {
        return false;
    };
    let id = (version as u16) ^ 0x5a5a;
    // Unsigned: NOTIFY only makes a secondary check the SOA early (the
    // transfer it then asks for is what TSIG or allow_transfer guards), and
    // resolvers without TSIG support (Unbound) refuse a signed message as
    // malformed. Secondaries accept it by its address (allow-notify).
    let msg = messages::notify(cfg, id, version);
    let mut buf = [0u8; 1024];
    for _ in 0..3 {
        if sock.send_to(&msg, target).await.is_err() {
            continue;
        }
        if let Ok(Ok((n, _))) = tokio::time::timeout(NOTIFY_WAIT, sock.recv_from(&mut buf)).await {
            if n >= 2 && buf[..2] == id.to_be_bytes() {
                return true;
            }
        }
    }
    false
}
