//! Infected-subscriber sightings from the sampled drop events: which
//! subscriber talked to which listed entry, on which port, when, how often.
//!
//! Subscriber addresses are pseudonymised by default with HMAC-SHA256 under a
//! key that stays on the edge node (created in the state dir on first use), so
//! the centre can tell subscribers apart and count them but not name them; an
//! ISP whose legal basis allows it can opt in to clear addresses. Memory is
//! bounded: sightings older than the retention are dropped, and past the
//! maximum the least recently seen go first.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    path::Path,
};

use c2wall_common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AgentError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SightKey {
    pub subscriber: String,
    pub entry_id: u32,
    pub protocol: u8,
    pub cc_port: u16,
    pub direction: u8,
    pub dropped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sight {
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    /// Part of `count` already reported.
    pub reported: u64,
}

/// One recent event, for `c2wall-agent top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub at: i64,
    pub key: SightKey,
    pub cc: IpAddr,
}

pub struct Sightings {
    key: [u8; 32],
    clear: bool,
    retention: i64,
    max: usize,
    map: HashMap<SightKey, Sight>,
    recent: VecDeque<Recent>,
}

pub const RECENT: usize = 50;

fn addr(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

/// The pseudonymisation key: read from `path`, or created (32 random bytes,
/// mode 0600) if it does not exist (shared with a coordinator forwarding
/// sightings upstream).
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], AgentError> {
    Ok(c2wall_subscriber::load_or_create_key(path)?)
}

impl Sightings {
    pub fn new(key: [u8; 32], clear: bool, retention_secs: i64, max: usize) -> Self {
        Sightings {
            key,
            clear,
            retention: retention_secs,
            max,
            map: HashMap::new(),
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    /// How a subscriber appears outside the edge node.
    pub fn subscriber(&self, a: IpAddr) -> String {
        if self.clear {
            return a.to_string();
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        match a {
            IpAddr::V4(v) => mac.update(&v.octets()),
            IpAddr::V6(v) => mac.update(&v.octets()),
        }
        let tag = mac.finalize().into_bytes();
        let hex: String = tag[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("p-{hex}")
    }

    /// Adds one event seen at `at` (Unix seconds).
    pub fn record(&mut self, ev: &DropEvent, at: i64) {
        let key = SightKey {
            subscriber: self.subscriber(addr(ev.family, &ev.subscriber)),
            entry_id: ev.entry_id,
            protocol: ev.protocol,
            cc_port: u16::from_be_bytes(ev.cc_port),
            direction: ev.direction,
            dropped: ev.verdict as u32 == VERDICT_DROP,
        };
        let s = self.map.entry(key.clone()).or_insert(Sight {
            first_seen: at,
            last_seen: at,
            count: 0,
            reported: 0,
        });
        s.first_seen = s.first_seen.min(at);
        s.last_seen = s.last_seen.max(at);
        s.count += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            at,
            key,
            cc: addr(ev.family, &ev.cc),
        });
        if self.map.len() > self.max {
            // Evict a tenth at once, so a full table sorts once per max/10
            // new sightings, not on every event.
            self.evict(self.map.len() - self.max + self.max / 10);
        }
    }

    fn evict(&mut self, n: usize) {
        let mut by_age: Vec<(i64, SightKey)> = self
            .map
            .iter()
            .map(|(k, s)| (s.last_seen, k.clone()))
            .collect();
        by_age.sort();
        for (_, k) in by_age.into_iter().take(n) {
            self.map.remove(&k);
        }
    }

    /// Drops sightings not seen within the retention.
    pub fn expire(&mut self, now: i64) {
        let horizon = now - self.retention;
        self.map.retain(|_, s| s.last_seen >= horizon);
    }

    /// Sightings with counts not yet reported, with the unreported part as
    /// their count. [`Sightings::reported`] marks them once delivered.
    pub fn unreported(&self) -> Vec<(SightKey, Sight)> {
        let mut out: Vec<(SightKey, Sight)> = self
            .map
            .iter()
            .filter(|(_, s)| s.count > s.reported)
            .map(|(k, s)| {
                let mut d = s.clone();
                d.count = s.count - s.reported;
                (k.clone(), d)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn reported(&mut self, batch: &[(SightKey, Sight)]) {
        for (k, d) in batch {
            if let Some(s) = self.map.get_mut(k) {
                s.reported += d.count;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn recent(&self) -> impl Iterator<Item = &Recent> {
        self.recent.iter().rev()
    }
}

/// A drop event from the ring buffer's bytes.
pub fn event_from_bytes(b: &[u8]) -> Option<DropEvent> {
    if b.len() < std::mem::size_of::<DropEvent>() {
        return None;
    }
    // SAFETY: DropEvent is repr(C), plain data, every bit pattern valid;
    // read_unaligned copes with the ring buffer's 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const DropEvent) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sub: [u8; 4], entry: u32, port: u16) -> DropEvent {
        let mut e = DropEvent {
            entry_id: entry,
            verdict: VERDICT_DROP as u8,
            direction: DIR_TO_CC as u8,
            family: FAMILY_V4,
            protocol: 17,
            cc_port: port.to_be_bytes(),
            ..Default::default()
        };
        e.subscriber[..4].copy_from_slice(&sub);
        e.cc[..4].copy_from_slice(&[203, 0, 113, 66]);
        e
    }

    #[test]
    fn pseudonymised_aggregated_bounded_and_reported_once() {
        let mut s = Sightings::new([7; 32], false, 3600, 3);
        for t in 0..5 {
            s.record(&ev([198, 51, 100, 10], 1, 9000), 100 + t);
        }
        s.record(&ev([198, 51, 100, 11], 1, 9000), 103);
        let batch = s.unreported();
        assert_eq!(batch.len(), 2);
        let counts: Vec<u64> = batch.iter().map(|(_, d)| d.count).collect();
        assert_eq!(counts.iter().sum::<u64>(), 6);
        for (k, d) in &batch {
            assert!(
                k.subscriber.starts_with("p-") && k.subscriber.len() == 26,
                "{k:?}"
            );
            assert!(
                !k.subscriber.contains("198.51"),
                "no address in a pseudonym"
            );
            if d.count == 5 {
                assert_eq!((d.first_seen, d.last_seen), (100, 104));
            }
        }
        assert_ne!(batch[0].0.subscriber, batch[1].0.subscriber);
        // Stable under the same key, different under another.
        let again = Sightings::new([7; 32], false, 3600, 3);
        let other = Sightings::new([8; 32], false, 3600, 3);
        let a: IpAddr = "198.51.100.10".parse().unwrap();
        assert_eq!(s.subscriber(a), again.subscriber(a));
        assert_ne!(s.subscriber(a), other.subscriber(a));
        assert_eq!(
            Sightings::new([7; 32], true, 1, 1).subscriber(a),
            "198.51.100.10"
        );
        // Reported counts are not sent again; new ones are.
        s.reported(&batch);
        assert!(s.unreported().is_empty());
        s.record(&ev([198, 51, 100, 10], 1, 9000), 110);
        assert_eq!(s.unreported()[0].1.count, 1);
        // Bounded: the least recently seen go first; retention drops the old.
        s.record(&ev([198, 51, 100, 12], 2, 53), 111);
        s.record(&ev([198, 51, 100, 13], 2, 53), 112);
        assert_eq!(s.len(), 3);
        s.expire(111 + 3600);
        assert_eq!(s.len(), 2);
        assert_eq!(s.recent().next().unwrap().cc.to_string(), "203.0.113.66");
    }

    #[test]
    fn the_key_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("c2wall-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sightings.key");
        let k1 = load_or_create_key(&p).unwrap();
        let k2 = load_or_create_key(&p).unwrap();
        assert_eq!(k1, k2);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A truncated key does not stop the agent: set aside, replaced.
        std::fs::write(&p, b"short").unwrap();
        let k3 = load_or_create_key(&p).unwrap();
        assert_ne!(k3, k1);
        assert_eq!(
            std::fs::read(dir.join("sightings.damaged")).unwrap(),
            b"short"
        );
        assert_eq!(load_or_create_key(&p).unwrap(), k3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
