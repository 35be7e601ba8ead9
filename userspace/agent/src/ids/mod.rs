//! Stable entry ids. An id names an entry in the kernel (hit counters are keyed
//! by it), so it must not change while the entry stays listed, including across
//! agent restarts: the table is persisted in the state dir. Ids are never reused,
//! so a new entry never inherits an old entry's hits.

use std::collections::HashMap;

use c2wall_model::{Entry, Identity, PortScope, Prefix, Target};

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

    fn of_entry(e: &Entry) -> Option<IdKey> {
        Some(IdKey {
            prefix: e.listed_prefix()?,
            scope: e.scope,
        })
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

/// The ids of a full list: see [`Ids::assign`].
pub struct Assigned<'e> {
    /// Each listed prefix entry with its id, in key order; an identity
    /// listed twice appears once, with its later entry.
    pub entries: Vec<(&'e Entry, u32)>,
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
    pub fn assign<'e>(
        &self,
        entries: &'e [Entry],
        previous: impl Iterator<Item = (IdKey, u32)>,
    ) -> Assigned<'e> {
        let mut rows: Vec<(IdKey, &Entry)> = entries
            .iter()
            .filter_map(|e| Some((IdKey::of_entry(e)?, e)))
            .collect();
        // Stable: of an identity listed twice, the later entry stays last.
        rows.sort_by_key(|(k, _)| *k);
        let mut out = Vec::with_capacity(rows.len());
        let (mut gone, mut next) = (Vec::new(), self.next);
        let mut previous = previous.peekable();
        for (i, (key, e)) in rows.iter().enumerate() {
            if rows.get(i + 1).is_some_and(|(k, _)| k == key) {
                continue;
            }
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
            out.push((*e, id));
        }
        gone.extend(previous.map(|(_, id)| id));
        Assigned {
            entries: out,
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
pub fn fresh(entries: &[Entry]) -> Vec<(&Entry, u32)> {
    Ids::new().assign(entries, std::iter::empty()).entries
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
mod tests {
    use super::*;
    use c2wall_model::{Action, Direction};
    use std::fs;

    fn entry(s: &str) -> Entry {
        Entry {
            target: s.parse().unwrap(),
            scope: None,
            action: Action::Drop,
            direction: Direction::Both,
        }
    }

    fn keyed(a: &Assigned) -> Vec<(IdKey, u32)> {
        a.entries
            .iter()
            .map(|(e, id)| (IdKey::of(&e.identity()).unwrap(), *id))
            .collect()
    }

    #[test]
    fn ids_are_stable_never_reused_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("c2wall-ids-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ids");
        let mut ids = Ids::new();
        let (first, second) = (
            [entry("192.0.2.1"), entry("192.0.2.2")],
            [entry("192.0.2.3"), entry("192.0.2.2")],
        );
        let a = ids.assign(&first, std::iter::empty());
        ids.settle(&a);
        let b = ids.assign(&second, keyed(&a).into_iter());
        ids.settle(&b);
        assert_eq!(a.entries[1].1, b.entries[0].1, "a kept entry keeps its id");
        assert_eq!(b.gone, vec![a.entries[0].1]);
        assert!(
            b.entries[1].1 > a.entries[1].1,
            "a new entry gets a fresh id"
        );
        ids.save(&path, keyed(&b).into_iter()).unwrap();
        let again = Ids::load(&path).unwrap();
        assert_eq!(again.loaded().collect::<Vec<_>>(), keyed(&b));
        let third = [entry("192.0.2.4"), entry("192.0.2.3")];
        let c = again.assign(&third, again.loaded());
        assert_eq!(c.entries[0].1, b.entries[1].1);
        assert!(c.entries[1].1 > b.entries[1].1);
        assert_eq!(c.gone, vec![b.entries[0].1]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_repeated_identity_takes_one_id_and_its_later_entry() {
        let mut later = entry("192.0.2.1");
        later.action = Action::Monitor;
        let list = [entry("192.0.2.1"), entry("192.0.2.0/24"), later.clone()];
        let a = Ids::new().assign(&list, std::iter::empty());
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries[1].0, &later);
        assert_ne!(a.entries[0].1, a.entries[1].1);
    }

    #[test]
    fn port_scoped_keys_follow_their_prefix_in_protocol_and_port_order() {
        let scoped = |p: &str, proto: &str, port: &str| Entry {
            scope: Some(PortScope::parse(proto, port).unwrap()),
            ..entry(p)
        };
        let list = [
            scoped("192.0.2.1", "udp", "53"),
            scoped("192.0.2.1", "tcp", "443"),
            entry("192.0.2.1"),
            scoped("192.0.2.1", "tcp", "80"),
        ];
        let a = Ids::new().assign(&list, std::iter::empty());
        let keys = keyed(&a);
        let scopes: Vec<_> = keys
            .iter()
            .map(|(k, _)| k.scope.map(|s| (s.protocol.number(), s.port)))
            .collect();
        assert_eq!(
            scopes,
            [None, Some((6, 80)), Some((6, 443)), Some((17, 53))]
        );
        let named = name(keys.iter().copied(), [keys[2].1, 999]);
        assert_eq!(named.len(), 1);
        assert_eq!(named[&keys[2].1], list[1].identity());
    }
}
