//! Stable entry ids. An id names an entry in the kernel (hit counters are keyed
//! by it), so it must not change while the entry stays listed, including across
//! agent restarts: the table is persisted in the state dir. Ids are never reused,
//! so a new entry never inherits an old entry's hits.

use std::collections::HashMap;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use c2wall_model::{Action, Direction, Entry, Identity, PortScope, Prefix, Protocol, Target};

mod file;
pub use file::{append_synced, write_atomic};

use crate::fastmap::{FastMap, FastSet};

/// A listed prefix identity as the id table keys it: 24 bytes, where an
/// `Identity` takes 64 (its target has room for a domain). Ordered by
/// prefix, then no scope before port scopes, as the compiler walks its
/// entries ([`crate::compile::Compiler::ids`]). Domain entries take no id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdKey {
    pub prefix: Prefix,
    pub scope: Option<PortScope>,
}

impl IdKey {
    pub fn of(ident: &Identity) -> Option<IdKey> {
        Some(IdKey {
            prefix: ident.prefix()?,
            scope: ident.scope,
        })
    }

    pub(crate) fn of_entry(e: &Entry) -> Option<IdKey> {
        Some(IdKey {
            prefix: e.listed_prefix()?,
            scope: e.scope,
        })
    }

    /// The key as two integers that sort as the keys do: the address bits,
    /// and family, length and port scope in one word. Sorting a million of
    /// these is several times faster than comparing the keys field by field.
    pub fn packed(&self) -> (u128, u32) {
        let scope = self
            .scope
            .map_or(0, |s| (1 + s.protocol as u32) << 16 | s.port as u32);
        let (family, len) = (self.prefix.family() as u32, self.prefix.len() as u32);
        (self.prefix.bits(), family << 31 | len << 23 | scope)
    }

    /// The key [`IdKey::packed`] made.
    pub fn unpack(bits: u128, tail: u32) -> IdKey {
        let addr = match tail >> 31 {
            0 => IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32)),
            _ => IpAddr::V6(Ipv6Addr::from(bits)),
        };
        let scope = match (tail >> 16) & 0x7f {
            0 => None,
            code => Some(PortScope {
                protocol: [Protocol::Tcp, Protocol::Udp][(code - 1) as usize & 1],
                port: tail as u16,
            }),
        };
        IdKey {
            prefix: Prefix::host(addr).truncate((tail >> 23) as u8),
            scope,
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            target: Target::Prefix(self.prefix),
            scope: self.scope,
        }
    }
}

/// The id counter and the id file. The ids of the listed entries live in
/// one place: the compiler's table once a full sync has run
/// ([`crate::compile::Compiler::ids`]), and until then the table read from
/// the file (`loaded`), which the first full sync takes over.
#[derive(Debug, Default, Clone)]
pub struct Ids {
    /// The file's table, sorted by key; emptied once a full sync has given
    /// its entries their ids.
    loaded: Vec<(IdKey, u32)>,
    next: u32,
    /// Lines appended to the file since it was last written whole.
    journal_lines: usize,
}

/// A listed prefix entry with its id, as [`Ids::assign`] hands it to the
/// compiler: everything the compiler reads, gathered in one pass over the
/// list, so the compiler walks these in order instead of reaching back
/// into the list (a cache miss an entry at a million).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Numbered {
    pub key: IdKey,
    pub action: Action,
    pub direction: Direction,
    pub id: u32,
}

impl Numbered {
    pub fn entry(&self) -> Entry {
        Entry {
            target: Target::Prefix(self.key.prefix),
            scope: self.key.scope,
            action: self.action,
            direction: self.direction,
        }
    }
}

/// The ids of a full list: see [`Ids::assign`].
pub struct Assigned {
    /// Each listed prefix entry with its id, in key order; an identity
    /// listed twice appears once, with its later entry.
    pub rows: Vec<Numbered>,
    /// The ids of identities the previous table had and the list does not.
    pub gone: Vec<u32>,
    next: u32,
}

/// Ids for a change: new identities with their fresh ids, withdrawn ones
/// with the ids they had.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IdPlan {
    pub added: Vec<(Identity, u32)>,
    pub removed: Vec<(Identity, u32)>,
    next: u32,
}

impl Ids {
    pub fn new() -> Self {
        Ids {
            loaded: Vec::new(),
            next: 1,
            journal_lines: 0,
        }
    }

    /// The table read from the file, in key order (empty after a full sync).
    pub fn loaded(&self) -> impl Iterator<Item = (IdKey, u32)> + '_ {
        self.loaded.iter().copied()
    }

    /// The id the file's table gives `ident`.
    pub fn loaded_id(&self, ident: &Identity) -> Option<u32> {
        let key = IdKey::of(ident)?;
        let i = self.loaded.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(self.loaded[i].1)
    }

    /// Ids for `entries`, given the table in force (`previous`, in key
    /// order): a listed identity keeps its id, a new one takes a fresh one.
    /// Sorting the entries by key makes this one merge of two sorted lists,
    /// not a hash lookup per entry. Changes nothing until [`Ids::settle`].
    pub fn assign(
        &self,
        entries: &[Entry],
        previous: impl Iterator<Item = (IdKey, u32)>,
    ) -> Assigned {
        // Sorted by packed key, family first; the entry's index breaks ties,
        // so of an identity listed twice the later entry stays last.
        let mut order: Vec<(u128, u32, u32, Action, Direction)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let (bits, tail) = IdKey::of_entry(e)?.packed();
                Some((bits, tail, i as u32, e.action, e.direction))
            })
            .collect();
        order.sort_unstable_by_key(|&(bits, tail, i, _, _)| (tail >> 31, bits, tail, i));
        let mut out: Vec<Numbered> = Vec::with_capacity(order.len());
        let (mut gone, mut next) = (Vec::new(), self.next);
        let mut previous = previous.peekable();
        for (i, &(bits, tail, _, action, direction)) in order.iter().enumerate() {
            if order.get(i + 1).is_some_and(|o| (o.0, o.1) == (bits, tail)) {
                continue;
            }
            let key = &IdKey::unpack(bits, tail);
            while let Some((_, id)) = previous.next_if(|(k, _)| k < key) {
                gone.push(id);
            }
            let id = match previous.next_if(|(k, _)| k == key) {
                Some((_, id)) => id,
                None => {
                    next += 1;
                    next - 1
                }
            };
            out.push(Numbered {
                key: *key,
                action,
                direction,
                id,
            });
        }
        gone.extend(previous.map(|(_, id)| id));
        Assigned {
            rows: out,
            gone,
            next,
        }
    }

    /// An assignment is enforced: its fresh ids are taken, and the table
    /// the file gave has been matched (the compiler holds the ids now).
    pub fn settle(&mut self, a: &Assigned) {
        self.next = self.next.max(a.next);
        self.loaded = Vec::new();
    }

    /// The ids `listed` and `withdrawn` identities would take, without
    /// changing anything (see [`Ids::commit`]); `known` gives the ids in
    /// force.
    pub fn plan<'a>(
        &self,
        listed: impl IntoIterator<Item = &'a Identity>,
        withdrawn: impl IntoIterator<Item = &'a Identity>,
        known: impl Fn(&Identity) -> Option<u32>,
    ) -> IdPlan {
        let mut plan = IdPlan {
            next: self.next,
            ..Default::default()
        };
        let mut fresh: HashMap<Identity, u32> = HashMap::new();
        for ident in listed {
            if known(ident).is_none() && !fresh.contains_key(ident) {
                fresh.insert(ident.clone(), plan.next);
                plan.added.push((ident.clone(), plan.next));
                plan.next += 1;
            }
        }
        for ident in withdrawn {
            if let Some(id) = known(ident) {
                plan.removed.push((ident.clone(), id));
            }
        }
        plan
    }

    /// The entries the file's table names among `wanted` (see [`name`]).
    pub fn identities(&self, wanted: impl IntoIterator<Item = u32>) -> FastMap<u32, Identity> {
        name(self.loaded(), wanted)
    }
}

/// The ids a first full sync gives `entries` (none in force before): for
/// tests and benchmarks that compile a list the way the engine does.
pub fn fresh(entries: &[Entry]) -> Vec<(Entry, u32)> {
    let rows = Ids::new().assign(entries, std::iter::empty()).rows;
    rows.iter().map(|r| (r.entry(), r.id)).collect()
}

/// The identities of the ids in `wanted`, by one pass over `table`: naming
/// is rare (a report, a status page) and batched, so no reverse index is
/// kept for it (at a million entries that would be 50 MiB more).
pub fn name(
    table: impl Iterator<Item = (IdKey, u32)>,
    wanted: impl IntoIterator<Item = u32>,
) -> FastMap<u32, Identity> {
    let wanted: FastSet<u32> = wanted.into_iter().collect();
    if wanted.is_empty() {
        return FastMap::default();
    }
    table
        .filter(|(_, id)| wanted.contains(id))
        .map(|(k, id)| (id, k.identity()))
        .collect()
}

#[cfg(test)]
mod tests;
