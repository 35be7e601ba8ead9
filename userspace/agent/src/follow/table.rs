//! The addresses the edge follows from DNS answers: each a host entry that
//! lives while the answer does (its TTL clamped between a floor and a
//! ceiling), remembered with the listed name it came from (`dns:NAME`).
//! Bounded per name and in total; never a special-purpose, private or
//! allowlisted address. The one owner of these entries: the engine only
//! receives the changes it returns.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use c2wall_model::{Action, Direction, DomainName, Entry, Identity, Prefix, Target};
use serde::Deserialize;

/// `[follow]` in the agent's config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Follow DNS answers for listed names at all.
    pub enabled: bool,
    /// Seconds an address is held at least, whatever the answer's TTL (a
    /// TTL of 0 would otherwise add and remove it at once).
    pub ttl_floor: u32,
    /// Seconds an address is held at most: a C&C name's addresses rotate,
    /// and an address reused by someone else must not stay blocked.
    pub ttl_ceiling: u32,
    /// Addresses held per name (an answer can list many).
    pub per_name: usize,
    /// Addresses held in all.
    pub total: usize,
    /// Follow only answers from these resolvers (empty: from any). With
    /// the ISP's resolvers and the public ones its subscribers use listed,
    /// an answer spoofed from elsewhere cannot add an entry.
    #[serde(deserialize_with = "prefixes")]
    pub resolvers: Vec<Prefix>,
}

fn prefixes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Prefix>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|p| {
            p.parse::<Prefix>().map_err(|e| {
                serde::de::Error::custom(format!(
                    "resolvers: `{p}` is not an address or prefix: {e}"
                ))
            })
        })
        .collect()
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            enabled: true,
            ttl_floor: 60,
            ttl_ceiling: 3600,
            per_name: 16,
            total: 65_536,
            resolvers: Vec::new(),
        }
    }
}

/// Why an answered address was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Special-purpose or private (the reason from the model's list).
    Special(&'static str),
    /// On the agent's allowlist.
    Allowlisted,
    /// The name holds `per_name` addresses already.
    NameFull,
    /// `total` addresses are held already.
    TotalFull,
}

impl Refused {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Special(_) => "special",
            Refused::Allowlisted => "allowlisted",
            Refused::NameFull => "per_name",
            Refused::TotalFull => "total",
        }
    }
}

#[derive(Debug, Clone)]
struct Held {
    name: DomainName,
    action: Action,
    until: Instant,
}

/// What one answer did.
#[derive(Debug, Default)]
pub struct Added {
    /// Entries to add or change in the engine.
    pub changes: Vec<(Identity, Option<Entry>)>,
    /// Addresses new to the table.
    pub added: usize,
    /// Addresses already held whose time was extended.
    pub refreshed: usize,
    pub refused: Vec<(IpAddr, Refused)>,
}

#[derive(Debug, Default)]
pub struct Followed {
    limits: Limits,
    by_addr: HashMap<IpAddr, Held>,
    by_name: HashMap<DomainName, BTreeSet<IpAddr>>,
}

fn host_entry(addr: IpAddr, action: Action) -> Entry {
    Entry {
        target: Target::Prefix(Prefix::host(addr)),
        scope: None,
        action,
        direction: Direction::Both,
    }
}

impl Followed {
    pub fn new(limits: Limits) -> Followed {
        Followed {
            limits,
            ..Default::default()
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether answers from `resolver` are followed (`resolvers`, if set).
    pub fn accepts(&self, resolver: IpAddr) -> bool {
        self.limits.resolvers.is_empty()
            || self
                .limits
                .resolvers
                .iter()
                .any(|p| p.contains_addr(resolver))
    }

    /// Holds the answered `addrs` of `name` (listed with `action`) from
    /// `now`. `allowed` vetoes an address (the agent's allowlist).
    pub fn add(
        &mut self,
        name: &DomainName,
        action: Action,
        addrs: &[(IpAddr, u32)],
        now: Instant,
        allowlisted: impl Fn(IpAddr) -> bool,
    ) -> Added {
        let mut out = Added::default();
        for &(addr, ttl) in addrs {
            if let Some(why) = c2wall_model::special::special_purpose(addr) {
                out.refused.push((addr, Refused::Special(why)));
                continue;
            }
            if allowlisted(addr) {
                out.refused.push((addr, Refused::Allowlisted));
                continue;
            }
            let ttl = ttl.clamp(self.limits.ttl_floor, self.limits.ttl_ceiling.max(1));
            let until = now + Duration::from_secs(ttl as u64);
            if let Some(h) = self.by_addr.get_mut(&addr) {
                // Held already (by this name or another): the later end and
                // the stronger action win; the first name stays its source.
                h.until = h.until.max(until);
                if action == Action::Drop && h.action != Action::Drop {
                    h.action = action;
                    let e = host_entry(addr, action);
                    out.changes.push((e.identity(), Some(e)));
                }
                out.refreshed += 1;
                continue;
            }
            let held = self.by_name.get(name).map_or(0, BTreeSet::len);
            if held >= self.limits.per_name {
                out.refused.push((addr, Refused::NameFull));
                continue;
            }
            if self.by_addr.len() >= self.limits.total {
                out.refused.push((addr, Refused::TotalFull));
                continue;
            }
            self.by_addr.insert(
                addr,
                Held {
                    name: name.clone(),
                    action,
                    until,
                },
            );
            self.by_name.entry(name.clone()).or_default().insert(addr);
            let e = host_entry(addr, action);
            out.changes.push((e.identity(), Some(e)));
            out.added += 1;
        }
        out
    }

    /// Drops what has run out at `now`, and returns the withdrawals.
    pub fn expire(&mut self, now: Instant) -> Vec<(Identity, Option<Entry>)> {
        let gone: Vec<IpAddr> = self
            .by_addr
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(a, _)| *a)
            .collect();
        gone.into_iter()
            .filter_map(|a| self.release(a))
            .map(|id| (id, None))
            .collect()
    }

    /// Drops every address of `name` (its entry was withdrawn).
    pub fn forget_name(&mut self, name: &DomainName) -> Vec<(Identity, Option<Entry>)> {
        let addrs: Vec<IpAddr> = self
            .by_name
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        addrs
            .into_iter()
            .filter_map(|a| self.release(a))
            .map(|id| (id, None))
            .collect()
    }

    fn release(&mut self, addr: IpAddr) -> Option<Identity> {
        let h = self.by_addr.remove(&addr)?;
        if let Some(set) = self.by_name.get_mut(&h.name) {
            set.remove(&addr);
            if set.is_empty() {
                self.by_name.remove(&h.name);
            }
        }
        Some(host_entry(addr, h.action).identity())
    }

    /// The entries held now, for a full sync.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.by_addr.iter().map(|(a, h)| host_entry(*a, h.action))
    }

    /// The listed name a held entry came from.
    pub fn source_of(&self, id: &Identity) -> Option<&DomainName> {
        let p = id.target.prefix()?;
        if id.scope.is_some() || p.len() != p.family().max_len() {
            return None;
        }
        self.by_addr.get(&p.addr()).map(|h| &h.name)
    }

    pub fn holds(&self, id: &Identity) -> bool {
        self.source_of(id).is_some()
    }

    /// Addresses held, and names holding at least one.
    pub fn counts(&self) -> (usize, usize) {
        (self.by_addr.len(), self.by_name.len())
    }

    /// The held names, each with its address count.
    pub fn names(&self) -> impl Iterator<Item = (&DomainName, usize)> {
        self.by_name.iter().map(|(n, s)| (n, s.len()))
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
