//! The daemon's side of following DNS answers: the program hands over each
//! response for a listed name through the answer ring buffer; the agent
//! checks the name, takes the addresses along its CNAME chain and holds
//! them as entries while the answer lives. Once a second, what ran out (or
//! whose name was withdrawn) goes.

use std::{
    os::fd::AsRawFd,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aya::maps::{Map, MapData, RingBuf};
use c2wall_agent::{
    combine::enforce_followed,
    follow::answer,
    metrics::Metrics,
    paths::Paths,
    sync::{SyncedHandle, SyncedSet},
};
use c2wall_common::{DnsAnswer, FAMILY_V4, MAP_DNS_ANSWERS};
use tokio::io::unix::AsyncFd;

use crate::observe::record;
use crate::shared::Shared;

/// The pinned answer ring buffer; None (following off) when it cannot be
/// opened.
pub(crate) fn open_answers(paths: &Paths) -> Option<RingBuf<MapData>> {
    let opened = MapData::from_pin(paths.map(MAP_DNS_ANSWERS))
        .map_err(|e| e.to_string())
        .and_then(|d| Map::from_map_data(d).map_err(|e| e.to_string()))
        .and_then(|m| RingBuf::try_from(m).map_err(|e| e.to_string()));
    match opened {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the DNS answer ring buffer; DNS answers are not followed");
            None
        }
    }
}

struct Fd(RingBuf<MapData>);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

fn answer_from_bytes(b: &[u8]) -> Option<DnsAnswer> {
    if b.len() < std::mem::size_of::<DnsAnswer>() {
        return None;
    }
    // SAFETY: the size is checked; DnsAnswer is plain bytes (repr(C), no
    // invalid bit patterns).
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const DnsAnswer) })
}

/// Reads answers as they come, until the task is dropped. Locks the
/// coordinator's set before the daemon's state, as every other path does.
pub(crate) async fn read_answers(
    ring: RingBuf<MapData>,
    shared: Arc<Mutex<Shared>>,
    coordinator: Option<SyncedHandle>,
    metrics: Arc<Metrics>,
) {
    // SAFETY: the ring buffer owns its fd and keeps it open, unchanged, for
    // as long as the AsyncFd holds it.
    let mut fd = match unsafe { AsyncFd::register(Fd(ring)) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot poll the DNS answer ring buffer");
            return;
        }
    };
    let empty = SyncedSet::default();
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "polling the DNS answer ring buffer");
                return;
            }
        };
        let ring = &mut guard.get_inner_mut().0;
        let mut answers = Vec::new();
        while let Some(item) = ring.next() {
            answers.extend(answer_from_bytes(&item));
        }
        guard.clear_ready();
        if answers.is_empty() {
            continue;
        }
        let owner = coordinator.as_ref().map(|h| h.lock().expect("lock"));
        let set = owner.as_ref().map_or(&empty, |o| o.set());
        let mut s = shared.lock().expect("lock");
        for a in &answers {
            s.follow_answer(a, set, &metrics);
        }
    }
}

/// Once a second: removes the addresses whose time ran out or whose name is
/// no longer listed.
pub(crate) async fn expire(
    shared: Arc<Mutex<Shared>>,
    coordinator: Option<SyncedHandle>,
    metrics: Arc<Metrics>,
) {
    let empty = SyncedSet::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let owner = coordinator.as_ref().map(|h| h.lock().expect("lock"));
        let set = owner.as_ref().map_or(&empty, |o| o.set());
        shared
            .lock()
            .expect("lock")
            .expire_followed(Instant::now(), set, &metrics);
    }
}

impl Shared {
    /// One answer from the program: its addresses become entries of the
    /// listed name that covers its question.
    pub(crate) fn follow_answer(&mut self, a: &DnsAnswer, set: &SyncedSet, metrics: &Metrics) {
        let m = &metrics.follow;
        if !self.followed.limits().enabled {
            m.answers.with_label_values(&["disabled"]).inc();
            return;
        }
        let resolver: std::net::IpAddr = if a.family == FAMILY_V4 {
            std::net::Ipv4Addr::new(a.resolver[0], a.resolver[1], a.resolver[2], a.resolver[3])
                .into()
        } else {
            std::net::Ipv6Addr::from(a.resolver).into()
        };
        if !self.followed.accepts(resolver) {
            m.answers.with_label_values(&["other_resolver"]).inc();
            return;
        }
        let len = (a.len as usize).min(a.message.len());
        let Some(ans) = answer::parse(&a.message[..len]) else {
            m.answers.with_label_values(&["unparsed"]).inc();
            return;
        };
        // The program's probe is a hash: the name decides.
        let Some((domain, action)) = self.engine.listed().covering(&ans.name) else {
            m.answers.with_label_values(&["unlisted"]).inc();
            return;
        };
        let domain = domain.clone();
        let allow = self.files.allow.clone();
        let added = self
            .followed
            .add(&ans.name, action, &ans.addrs, Instant::now(), |addr| {
                allow.iter().any(|p| p.contains_addr(addr))
            });
        m.answers.with_label_values(&["followed"]).inc();
        m.added.inc_by(added.added as u64);
        m.refreshed.inc_by(added.refreshed as u64);
        for (addr, why) in &added.refused {
            m.refused.with_label_values(&[why.reason()]).inc();
            tracing::info!(%addr, name = %ans.name, reason = why.reason(), "answered address not followed");
        }
        if added.added > 0 {
            tracing::info!(name = %ans.name, entry = %domain, added = added.added, "following DNS answer");
        }
        self.apply_followed(added.changes, set, metrics);
    }

    pub(crate) fn expire_followed(&mut self, now: Instant, set: &SyncedSet, metrics: &Metrics) {
        let mut gone = self.followed.expire(now);
        // Names withdrawn since their answers came: their addresses go too.
        let unlisted: Vec<_> = self
            .followed
            .names()
            .filter(|(n, _)| self.engine.listed().covering(n).is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for n in &unlisted {
            gone.extend(self.followed.forget_name(n));
        }
        metrics.follow.expired.inc_by(gone.len() as u64);
        self.apply_followed(gone, set, metrics);
    }

    fn apply_followed(
        &mut self,
        changes: Vec<c2wall_agent::sync::EntryChange>,
        set: &SyncedSet,
        metrics: &Metrics,
    ) {
        let (addrs, names) = self.followed.counts();
        metrics.follow.addresses.set(addrs as i64);
        metrics.follow.names.set(names as i64);
        if changes.is_empty() || self.kernel_ahead {
            return;
        }
        match enforce_followed(&mut self.engine, &self.local, set, changes) {
            Ok(None) => {}
            Ok(Some(r)) => {
                let _ = record(&self.engine, Ok(r), metrics, "follow");
            }
            Err(e) => {
                let _ = record(&self.engine, Err(e), metrics, "follow");
            }
        }
    }
}
