//! Where the blocklist comes from. Files now; the coordinator stream implements
//! the same trait later.

pub mod file;

use c2wall_model::{Entry, Prefix};

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

/// The identities a snapshot lists.
pub fn identities(s: &Snapshot) -> std::collections::HashSet<c2wall_model::Identity> {
    s.entries.iter().map(|e| e.identity()).collect()
}
