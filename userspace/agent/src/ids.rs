//! Stable entry ids. An id names an entry in the kernel (hit counters are keyed
//! by it), so it must not change while the entry stays listed, including across
//! agent restarts: the table is persisted in the state dir. Ids are never reused,
//! so a new entry never inherits an old entry's hits.

use std::{collections::HashMap, fs, io::Write, path::Path};

use c2wall_model::{Entry, Identity, PortScope, Prefix};

use crate::error::AgentError;

#[derive(Debug, Default, Clone)]
pub struct Ids {
    by_identity: HashMap<Identity, u32>,
    next: u32,
}

impl Ids {
    pub fn new() -> Self {
        Ids {
            by_identity: HashMap::new(),
            next: 1,
        }
    }

    /// Ids for `entries`; identities no longer listed are forgotten and returned
    /// so their hit counters can be dropped.
    pub fn assign(&mut self, entries: &[Entry]) -> (Vec<(Entry, u32)>, Vec<u32>) {
        let mut keep = HashMap::with_capacity(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let ident = e.identity();
            let id = match self.by_identity.get(&ident) {
                Some(id) => *id,
                None => {
                    let id = self.next;
                    self.next += 1;
                    id
                }
            };
            keep.insert(ident, id);
            out.push((*e, id));
        }
        let gone = self
            .by_identity
            .iter()
            .filter(|(k, _)| !keep.contains_key(k))
            .map(|(_, v)| *v)
            .collect();
        self.by_identity = keep;
        (out, gone)
    }

    /// Entries currently listed.
    pub fn len(&self) -> usize {
        self.by_identity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }

    pub fn identity_of(&self) -> HashMap<u32, Identity> {
        self.by_identity.iter().map(|(k, v)| (*v, *k)).collect()
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
            let parsed = match f.as_slice() {
                [id, p] => p.parse::<Prefix>().ok().map(|p| (id, p, None)),
                [id, p, proto, port] => p
                    .parse::<Prefix>()
                    .ok()
                    .zip(PortScope::parse(proto, port).ok())
                    .map(|(p, s)| (id, p, Some(s))),
                _ => None,
            };
            // A damaged line only costs that entry its hit history.
            if let Some((id, prefix, scope)) = parsed {
                if let Ok(id) = id.parse::<u32>() {
                    ids.by_identity.insert(Identity { prefix, scope }, id);
                    ids.next = ids.next.max(id + 1);
                }
            }
        }
        Ok(ids)
    }

    /// Writes the table atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let mut text = format!("next {}\n", self.next);
        for (ident, id) in &self.by_identity {
            text.push_str(&format!("{id} {ident}\n"));
        }
        write_atomic(path, text.as_bytes())
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), AgentError> {
    let err = |source| AgentError::WriteFile {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{Action, Direction};

    fn entry(s: &str) -> Entry {
        Entry {
            prefix: s.parse().unwrap(),
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
        let (a, _) = ids.assign(&[entry("192.0.2.1"), entry("192.0.2.2")]);
        let (b, gone) = ids.assign(&[entry("192.0.2.2"), entry("192.0.2.3")]);
        assert_eq!(a[1].1, b[0].1, "a kept entry keeps its id");
        assert_eq!(gone, vec![a[0].1]);
        assert!(b[1].1 > a[1].1, "a new entry gets a fresh id");
        ids.save(&path).unwrap();
        let mut again = Ids::load(&path).unwrap();
        let (c, _) = again.assign(&[entry("192.0.2.3"), entry("192.0.2.4")]);
        assert_eq!(c[0].1, b[1].1);
        assert!(c[1].1 > b[1].1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
