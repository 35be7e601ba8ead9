//! The id file: the table written whole (sorted, one line per entry) and
//! the journal of deltas appended to it, so a restart keeps every id.

use std::{fmt::Write as _, fs, path::Path};

use c2wall_model::{text::push_decimal, Identity, PortScope};
use c2wall_subscriber::Staged;

use super::{Assigned, IdKey, IdPlan, Ids};
use crate::error::AgentError;
use crate::fastmap::FastMap;

impl Ids {
    /// Makes a plan's fresh ids taken; with `journal`, also appends the plan
    /// to that file (one fsync) so a restart keeps the ids. Once the journal
    /// outgrows the table (`listed` entries), the file is rewritten whole
    /// from `table` (the table in force, the plan applied).
    pub fn commit<T: Iterator<Item = (IdKey, u32)>>(
        &mut self,
        plan: &IdPlan,
        journal: Option<&Path>,
        listed: usize,
        table: impl FnOnce() -> T,
    ) -> Result<(), AgentError> {
        self.next = self.next.max(plan.next);
        let Some(path) = journal else {
            return Ok(());
        };
        if plan.added.is_empty() && plan.removed.is_empty() {
            return Ok(());
        }
        self.journal_lines += plan.added.len() + plan.removed.len() + 1;
        if self.journal_lines > listed.max(4096) {
            return self.save(path, table());
        }
        let mut text = String::new();
        for (ident, id) in &plan.added {
            let _ = writeln!(text, "{id} {ident}");
        }
        for (ident, _) in &plan.removed {
            let _ = writeln!(text, "- {ident}");
        }
        let _ = writeln!(text, "next {}", self.next);
        append_synced(path, text.as_bytes())
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
        let mut table: FastMap<IdKey, u32> = FastMap::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["next", n] = f.as_slice() {
                ids.next = n.parse().unwrap_or(1).max(ids.next);
                continue;
            }
            ids.journal_lines += 1;
            if let ["-", rest @ ..] = f.as_slice() {
                if let Some(key) = parse_identity(rest).as_ref().and_then(IdKey::of) {
                    table.remove(&key);
                }
                continue;
            }
            // A damaged line (a torn append too) only costs that entry its
            // hit history.
            if let [id, rest @ ..] = f.as_slice() {
                let key = parse_identity(rest).as_ref().and_then(IdKey::of);
                if let (Ok(id), Some(key)) = (id.parse::<u32>(), key) {
                    table.insert(key, id);
                    ids.next = ids.next.max(id + 1);
                }
            }
        }
        // Lines beyond one per listed entry are journal to compact.
        ids.journal_lines = ids.journal_lines.saturating_sub(table.len());
        ids.loaded = table.into_iter().collect();
        ids.loaded.sort_unstable();
        Ok(ids)
    }

    /// Writes `table` (the ids in force) as the whole file, atomically
    /// (temp file, fsync, rename).
    pub fn save(
        &mut self,
        path: &Path,
        table: impl Iterator<Item = (IdKey, u32)>,
    ) -> Result<(), AgentError> {
        self.journal_lines = 0;
        Ok(Ids::stage(path, self.next, table)?.commit()?)
    }

    /// The whole file for `table` with the counter at `next`, written and
    /// fsynced beside `path`: put in place ([`Ids::saved`]) once the ids it
    /// records are the ones in force, removed if dropped before.
    pub fn stage(
        path: &Path,
        next: u32,
        table: impl Iterator<Item = (IdKey, u32)>,
    ) -> Result<Staged, AgentError> {
        let mut text = format!("next {next}\n");
        for (key, id) in table {
            push_decimal(&mut text, id);
            text.push(' ');
            // Through fmt, the id file of a million entries took a quarter
            // second to write.
            key.identity().write_text(&mut text);
            text.push('\n');
        }
        Ok(c2wall_subscriber::stage(path, text.as_bytes())?)
    }

    /// [`Ids::stage`] of the table a full sync assigned.
    pub fn stage_assigned(&self, path: &Path, a: &Assigned) -> Result<Staged, AgentError> {
        let table = a.rows.iter().map(|r| (r.key, r.id));
        Ids::stage(path, self.next.max(a.next), table)
    }

    /// Puts a file [`Ids::stage`]d with the table in force in place.
    pub fn saved(&mut self, staged: Staged) -> Result<(), AgentError> {
        staged.commit()?;
        self.journal_lines = 0;
        Ok(())
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
