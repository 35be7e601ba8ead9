//! Stable entry ids. An id names an entry in the kernel (hit counters are keyed
//! by it), so it must not change while the entry stays listed, including across
//! agent restarts: the table is persisted in the state dir. Ids are never reused,
//! so a new entry never inherits an old entry's hits.

use std::{collections::HashMap, fs, net::IpAddr, path::Path, sync::OnceLock};

use c2wall_model::{Entry, Identity, PortScope, Prefix, Target};

use crate::error::AgentError;
use crate::fastmap::FastMap;

#[derive(Debug, Default, Clone)]
pub struct Ids {
    by_identity: FastMap<Key, u32>,
    /// The reverse, for naming the entry of a sampled drop event: derived
    /// from `by_identity` on first use after a full assignment (building it
    /// for a million entries is not worth a load's time when nothing asks).
    by_id: OnceLock<FastMap<u32, Key>>,
    next: u32,
    /// Lines appended to the file since it was last written whole.
    journal_lines: usize,
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
            by_identity: FastMap::default(),
            by_id: OnceLock::new(),
            next: 1,
            journal_lines: 0,
        }
    }

    /// Ids for `entries`; identities no longer listed are forgotten and returned
    /// so their hit counters can be dropped.
    pub fn assign<'e>(&mut self, entries: &'e [Entry]) -> (Vec<(&'e Entry, u32)>, Vec<u32>) {
        let mut keep = FastMap::with_capacity_and_hasher(entries.len(), Default::default());
        let mut out = Vec::with_capacity(entries.len());
        // Domain entries are not compiled into the prefix tables: no id.
        for e in entries {
            let Some(key) = Key::of(&e.identity()) else {
                continue;
            };
            let id = match self.by_identity.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.next;
                    self.next += 1;
                    id
                }
            };
            keep.insert(key, id);
            out.push((e, id));
        }
        let gone = self
            .by_identity
            .iter()
            .filter(|(k, _)| !keep.contains_key(k))
            .map(|(_, v)| *v)
            .collect();
        self.by_id = OnceLock::new();
        self.by_identity = keep;
        (out, gone)
    }

    pub fn get(&self, ident: &Identity) -> Option<u32> {
        self.by_identity.get(&Key::of(ident)?).copied()
    }

    /// The ids `listed` and `withdrawn` identities would take, without
    /// changing the table (see [`Ids::commit`]).
    pub fn plan<'a>(
        &self,
        listed: impl IntoIterator<Item = &'a Identity>,
        withdrawn: impl IntoIterator<Item = &'a Identity>,
    ) -> IdPlan {
        let mut plan = IdPlan {
            next: self.next,
            ..Default::default()
        };
        let mut fresh: HashMap<Identity, u32> = HashMap::new();
        for ident in listed {
            if self.get(ident).is_none() && !fresh.contains_key(ident) {
                fresh.insert(ident.clone(), plan.next);
                plan.added.push((ident.clone(), plan.next));
                plan.next += 1;
            }
        }
        for ident in withdrawn {
            if let Some(id) = self.get(ident) {
                plan.removed.push((ident.clone(), id));
            }
        }
        plan
    }

    /// Makes a plan real; with `journal`, also appends it to that file (one
    /// fsync) so a restart keeps the ids. The file is rewritten whole once the
    /// journal outgrows the table.
    pub fn commit(&mut self, plan: &IdPlan, journal: Option<&Path>) -> Result<(), AgentError> {
        for (ident, id) in &plan.added {
            if let Some(key) = Key::of(ident) {
                self.by_identity.insert(key, *id);
                if let Some(by_id) = self.by_id.get_mut() {
                    by_id.insert(*id, key);
                }
            }
        }
        for (ident, id) in &plan.removed {
            if let Some(key) = Key::of(ident) {
                self.by_identity.remove(&key);
            }
            if let Some(by_id) = self.by_id.get_mut() {
                by_id.remove(id);
            }
        }
        self.next = self.next.max(plan.next);
        let Some(path) = journal else {
            return Ok(());
        };
        if plan.added.is_empty() && plan.removed.is_empty() {
            return Ok(());
        }
        self.journal_lines += plan.added.len() + plan.removed.len() + 1;
        if self.journal_lines > self.by_identity.len().max(4096) {
            return self.save(path);
        }
        let mut text = String::new();
        for (ident, id) in &plan.added {
            text.push_str(&format!("{id} {ident}\n"));
        }
        for (ident, _) in &plan.removed {
            text.push_str(&format!("- {ident}\n"));
        }
        text.push_str(&format!("next {}\n", self.next));
        append_synced(path, text.as_bytes())
    }

    /// Entries currently listed.
    pub fn len(&self) -> usize {
        self.by_identity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }

    /// The entry an id names, if it is listed.
    pub fn identity(&self, id: u32) -> Option<Identity> {
        self.by_id
            .get_or_init(|| self.by_identity.iter().map(|(k, v)| (*v, *k)).collect())
            .get(&id)
            .map(Key::identity)
    }

    /// Loads the table; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ids::new()),
            Err(source) => {
                return Err(AgentError::ReadFile {
                    path: path.into(),
                    source,
                })
            }
        };
        let mut ids = Ids::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["next", n] = f.as_slice() {
                ids.next = n.parse().unwrap_or(1).max(ids.next);
                continue;
            }
            ids.journal_lines += 1;
            if let ["-", rest @ ..] = f.as_slice() {
                if let Some(key) = parse_identity(rest).as_ref().and_then(Key::of) {
                    ids.by_identity.remove(&key);
                }
                continue;
            }
            // A damaged line (a torn append too) only costs that entry its
            // hit history.
            if let [id, rest @ ..] = f.as_slice() {
                let key = parse_identity(rest).as_ref().and_then(Key::of);
                if let (Ok(id), Some(key)) = (id.parse::<u32>(), key) {
                    ids.by_identity.insert(key, id);
                    ids.next = ids.next.max(id + 1);
                }
            }
        }
        // Lines beyond one per listed entry are journal to compact.
        ids.journal_lines = ids.journal_lines.saturating_sub(ids.by_identity.len());
        Ok(ids)
    }

    /// Writes the table atomically (temp file, fsync, rename).
    pub fn save(&mut self, path: &Path) -> Result<(), AgentError> {
        self.journal_lines = 0;
        let mut text = format!("next {}\n", self.next);
        for (key, id) in &self.by_identity {
            text.push_str(&format!("{id} {}\n", key.identity()));
        }
        write_atomic(path, text.as_bytes())
    }
}

/// A prefix identity as the id maps hold it, one per entry in each: 22
/// bytes, where an `Identity` takes 64 (its prefix aligns a u128 and its
/// target has room for a domain). Domain entries take no id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: IpAddr,
    len: u8,
    scope: Option<PortScope>,
}

impl Key {
    fn of(ident: &Identity) -> Option<Key> {
        let p = ident.prefix()?;
        Some(Key {
            addr: p.addr(),
            len: p.len(),
            scope: ident.scope,
        })
    }

    fn identity(&self) -> Identity {
        let prefix = Prefix::new(self.addr, self.len).expect("made from a prefix");
        Identity {
            target: Target::Prefix(prefix),
            scope: self.scope,
        }
    }
}

fn parse_identity(f: &[&str]) -> Option<Identity> {
    match f {
        [p] => Some(Identity {
            target: p.parse().ok()?,
            scope: None,
        }),
        [p, proto, port] => Some(Identity {
            target: p.parse().ok()?,
            scope: Some(PortScope::parse(proto, port).ok()?),
        }),
        _ => None,
    }
}

/// Appends to a file and fsyncs it (a journal record).
pub fn append_synced(path: &Path, data: &[u8]) -> Result<(), AgentError> {
    Ok(c2wall_subscriber::append_synced(path, data)?)
}

/// Replaces a file atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), AgentError> {
    Ok(c2wall_subscriber::write_atomic(path, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{Action, Direction};

    fn entry(s: &str) -> Entry {
        Entry {
            target: s.parse().unwrap(),
            scope: None,
            action: Action::Drop,
            direction: Direction::Both,
        }
    }

    #[test]
    fn ids_are_stable_never_reused_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("c2wall-ids-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ids");
        let mut ids = Ids::new();
        let (first, second) = (
            [entry("192.0.2.1"), entry("192.0.2.2")],
            [entry("192.0.2.2"), entry("192.0.2.3")],
        );
        let (a, _) = ids.assign(&first);
        let (b, gone) = ids.assign(&second);
        assert_eq!(a[1].1, b[0].1, "a kept entry keeps its id");
        assert_eq!(gone, vec![a[0].1]);
        assert!(b[1].1 > a[1].1, "a new entry gets a fresh id");
        ids.save(&path).unwrap();
        let mut again = Ids::load(&path).unwrap();
        let third = [entry("192.0.2.3"), entry("192.0.2.4")];
        let (c, _) = again.assign(&third);
        assert_eq!(c[0].1, b[1].1);
        assert!(c[1].1 > b[1].1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
