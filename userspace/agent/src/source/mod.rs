//! Where the blocklist comes from. Files now; the coordinator stream implements
//! the same trait later.

pub mod file;

use std::collections::HashSet;

use c2wall_model::{Entry, Identity, Prefix};

use crate::ids::IdKey;

/// One line a source could not use, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub origin: String,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.reason)
    }
}

/// What a source currently says.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    pub allow: Vec<Prefix>,
    pub rejected: Vec<Rejected>,
}

pub trait BlocklistSource {
    /// The complete desired state, or an error if it cannot be read at all (the
    /// caller then keeps enforcing what it has).
    fn snapshot(&mut self) -> Result<Snapshot, crate::error::AgentError>;
}

/// The local files' snapshot, with an index of the identities it lists, to
/// tell whether a local line overrides a coordinator entry. The index is
/// the entries' positions sorted by identity (4 bytes an entry, binary
/// searched in the entries themselves): a hash set of a million 64-byte
/// identities held about 110 MiB and took 0.6 s to build.
#[derive(Debug, Default)]
pub struct Files {
    snap: Snapshot,
    /// Positions of the prefix entries, in [`IdKey`] order.
    order: Vec<u32>,
    /// Domain entries (few).
    names: HashSet<Identity>,
}

impl Files {
    pub fn new(snap: Snapshot) -> Files {
        let mut keyed: Vec<(u128, u32, u32)> = Vec::new();
        let mut names = HashSet::new();
        for (i, e) in snap.entries.iter().enumerate() {
            match IdKey::of_entry(e) {
                Some(k) => {
                    let (bits, tail) = k.packed();
                    keyed.push((bits, tail, i as u32));
                }
                None => {
                    names.insert(e.identity());
                }
            }
        }
        keyed.sort_unstable();
        let order = keyed.into_iter().map(|(_, _, i)| i).collect();
        Files { snap, order, names }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub fn contains(&self, id: &Identity) -> bool {
        let Some(key) = IdKey::of(id) else {
            return self.names.contains(id);
        };
        let key = key.packed();
        let entries = &self.snap.entries;
        self.order
            .binary_search_by(|&i| {
                let e = &entries[i as usize];
                IdKey::of_entry(e)
                    .expect("a prefix entry")
                    .packed()
                    .cmp(&key)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_hold_exactly_what_the_snapshot_lists() {
        let text = "192.0.2.1\n192.0.2.1 tcp 443\n2001:db8::/32 monitor\nc2.example\n";
        let (entries, bad) = file::parse_blocklist("t", text);
        assert!(bad.is_empty());
        let snap = Snapshot {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            ..Default::default()
        };
        let ids = Files::new(snap.clone());
        for e in &snap.entries {
            assert!(ids.contains(&e.identity()), "{e}");
        }
        let (others, _) = file::parse_blocklist(
            "t",
            "192.0.2.1 udp 443\n192.0.2.2\n2001:db8::/33\nother.example\n",
        );
        for (_, e) in others {
            assert!(!ids.contains(&e.identity()), "{e}");
        }
        assert!(!Files::default().contains(&snap.entries[0].identity()));
    }
}
