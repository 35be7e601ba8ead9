//! The daemon's side of following DNS answers: the program hands over each
//! response for a listed name through the answer ring buffer; the agent
//! checks the name, takes the addresses along its CNAME chain and holds
//! them as entries while the answer lives. Once a second, what ran out (or
//! whose name was withdrawn) goes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use c2wall_agent::{
    combine::enforce_followed,
    follow::answer,
    metrics::Metrics,
    sync::{SyncedHandle, SyncedSet},
};
use c2wall_common::{DnsAnswer, FAMILY_V4};

use crate::observe::record;
use crate::shared::Shared;

fn answer_from_bytes(b: &[u8]) -> Option<DnsAnswer> {
    if b.len() < std::mem::size_of::<DnsAnswer>() {
        return None;
    }
    // SAFETY: the size is checked; DnsAnswer is plain bytes (repr(C), no
    // invalid bit patterns).
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const DnsAnswer) })
}

/// Starts reading the answer ring (when it could be opened) and the expiry
/// tick.
pub(crate) fn spawn(
    answers: Option<RingBuf<MapData>>,
    shared: &Arc<Mutex<Shared>>,
    coordinator: Option<&SyncedHandle>,
    metrics: &Arc<Metrics>,
) {
    if let Some(ring) = answers {
        tokio::spawn(read_answers(
            ring,
            shared.clone(),
            coordinator.cloned(),
            metrics.clone(),
        ));
    }
    tokio::spawn(expire(
        shared.clone(),
        coordinator.cloned(),
        metrics.clone(),
    ));
}

/// Reads answers as they come, until the task is dropped. Locks the
/// coordinator's set before the daemon's state, as every other path does.
async fn read_answers(
    ring: RingBuf<MapData>,
    shared: Arc<Mutex<Shared>>,
    coordinator: Option<SyncedHandle>,
    metrics: Arc<Metrics>,
) {
    let empty = SyncedSet::default();
    c2wall_agent::ring::drain(ring, "DNS answers", |ring| {
        let mut answers = Vec::new();
        while let Some(item) = ring.next() {
            answers.extend(answer_from_bytes(&item));
        }
        if answers.is_empty() {
            return;
        }
        let owner = coordinator.as_ref().map(|h| h.lock().expect("lock"));
        let set = owner.as_ref().map_or(&empty, |o| o.set());
        let mut s = shared.lock().expect("lock");
        for a in &answers {
            s.follow_answer(a, set, &metrics);
        }
    })
    .await
}

/// Once a second: removes the addresses whose time ran out or whose name is
/// no longer listed.
async fn expire(
    shared: Arc<Mutex<Shared>>,
    coordinator: Option<SyncedHandle>,
    metrics: Arc<Metrics>,
) {
    let empty = SyncedSet::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Most seconds nothing is held: skip the locks (and any wait behind
        // an apply) then.
        if shared.lock().expect("lock").followed.counts() == (0, 0) {
            continue;
        }
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
        let allow = &self.files.snapshot().allow;
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
            tracing::info!(%addr, name = %ans.name, reason = ?why, "answered address not followed");
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
        match enforce_followed(&mut self.engine, &self.files, set, changes) {
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
