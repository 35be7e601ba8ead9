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

/// The identities a snapshot lists, to tell whether a local line overrides
/// a coordinator entry: prefix identities as packed keys, sorted and
/// binary-searched (32 bytes each; a hash set of a million 64-byte
/// identities held about 110 MiB and took 0.6 s to build), names in a set.
#[derive(Debug, Default)]
pub struct Identities {
    prefixes: Vec<(u128, u32)>,
    names: HashSet<Identity>,
}

impl Identities {
    pub fn contains(&self, id: &Identity) -> bool {
        match IdKey::of(id) {
            Some(k) => self.prefixes.binary_search(&k.packed()).is_ok(),
            None => self.names.contains(id),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.names.is_empty()
    }
}

/// The identities a snapshot lists.
pub fn identities(s: &Snapshot) -> Identities {
    let mut out = Identities::default();
    for e in &s.entries {
        match IdKey::of_entry(e) {
            Some(k) => out.prefixes.push(k.packed()),
            None => {
                out.names.insert(e.identity());
            }
        }
    }
    out.prefixes.sort_unstable();
    out
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
        let ids = identities(&snap);
        for e in &snap.entries {
            assert!(ids.contains(&e.identity()), "{e}");
        }
        let (others, _) =
            file::parse_blocklist("t", "192.0.2.1 udp 443\n192.0.2.2\n2001:db8::/33\nother.example\n");
        for (_, e) in others {
            assert!(!ids.contains(&e.identity()), "{e}");
        }
        assert!(identities(&Snapshot::default()).is_empty());
    }
}
