//! Source snapshot -> entry ids -> compiled table -> kernel. Pure logic over a
//! [`Dataplane`], so it runs the same against the kernel and in tests.
//!
//! Two ways in: [`Engine::sync`] takes a complete snapshot (start-up, SIGHUP,
//! a coordinator snapshot) and compiles it in full; [`Engine::sync_changes`]
//! takes the entries that changed (a coordinator delta) and writes only the
//! slots under them, so its cost follows the change, not the list.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
};

use c2wall_common::{ACTION_MONITOR, ALLOW_HAS_V4, ALLOW_HAS_V6, FOLLOW_DNS};
use c2wall_model::{Action, Entry, Family, Identity, Prefix};

use crate::apply::{Applier, ApplyStats};
use crate::compile::{Change, Compiler};
use crate::dataplane::Dataplane;
use crate::error::AgentError;
use crate::fastmap::FastMap;
use crate::follow::kernel::NameMaps;
use crate::follow::names::Listed;
use crate::ids::{name, Ids};
use crate::source::Snapshot;

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub stats: ApplyStats,
    pub entries: usize,
    /// (family, action) -> count
    pub by_kind: Vec<((Family, Action), usize)>,
    pub allow: usize,
    pub rejected: usize,
}

type Kinds = BTreeMap<(Family, Action), usize>;

pub struct Engine<D: Dataplane> {
    pub applier: Applier<D>,
    ids: Ids,
    ids_path: Option<PathBuf>,
    /// The entries the kernel enforces, by prefix; None until the first full
    /// sync (maps adopted from an earlier agent are not known entry by entry).
    compiler: Option<Compiler>,
    /// Prefix entries listed (each identity once).
    entries: usize,
    kinds: Kinds,
    allow: usize,
    rejected: usize,
    /// The domain entries, which the program follows DNS answers for.
    listed: Listed,
    /// What the program's name maps hold; None until first read.
    name_maps: Option<NameMaps>,
    /// `[follow] enabled`: false keeps the name map empty.
    following: bool,
}

impl<D: Dataplane> Engine<D> {
    pub fn new(applier: Applier<D>, ids: Ids, ids_path: Option<PathBuf>) -> Self {
        Engine {
            applier,
            entries: ids.loaded().count(),
            ids,
            ids_path,
            compiler: None,
            kinds: Kinds::new(),
            allow: 0,
            rejected: 0,
            listed: Listed::default(),
            name_maps: None,
            following: true,
        }
    }

    /// Whether the program follows DNS answers at all (`[follow] enabled`);
    /// takes effect at the next sync.
    pub fn set_following(&mut self, on: bool) {
        self.following = on;
    }

    /// The domain entries in force.
    pub fn listed(&self) -> &Listed {
        &self.listed
    }

    /// Makes the program's name map hold `listed`'s keys. The program looks
    /// at DNS responses from before the first name goes in until after the
    /// last one is gone.
    fn sync_names(&mut self, listed: Listed) -> Result<(), AgentError> {
        let want = if self.following {
            let (keys, left_out) = listed.keys();
            if left_out > 0 {
                tracing::warn!(
                    left_out,
                    "listed names the edge cannot follow (deeper than 16 labels, or past the \
                     kernel's name capacity); the resolvers' RPZ still refuses them"
                );
            }
            keys
        } else {
            HashMap::new()
        };
        let mut maps = match self.name_maps.take() {
            Some(m) => m,
            None => NameMaps::read(self.applier.dataplane())?,
        };
        if !want.is_empty() {
            self.applier.set_follow(FOLLOW_DNS)?;
        }
        let r = maps.write(self.applier.dataplane_mut(), &want);
        self.name_maps = Some(maps);
        r?;
        if want.is_empty() {
            self.applier.set_follow(0)?;
        }
        self.listed = listed;
        Ok(())
    }

    /// Makes the kernel enforce `snap`. The allowlist grows before the blocklist
    /// changes and shrinks after it, so no moment is less protected than either
    /// end state.
    pub fn sync(&mut self, snap: &Snapshot) -> Result<SyncReport, AgentError> {
        let report = self.sync_full(snap);
        // After the sync's temporaries are dropped, not before: freed last,
        // they would stay resident.
        release_freed_memory();
        report
    }

    fn sync_full(&mut self, snap: &Snapshot) -> Result<SyncReport, AgentError> {
        let current: Vec<Prefix> = self.applier.dataplane().allowlist()?;
        // The program consults a family's allowlist from before its first
        // prefix goes in until after its last one is gone.
        let before = allow_families(&current) | allow_families(&snap.allow);
        self.applier.set_allow(before)?;
        let dp = self.applier.dataplane_mut();
        for p in &snap.allow {
            if !current.contains(p) {
                dp.put_allow(p)?;
            }
        }
        // Ids change only if the apply succeeds, so a failed apply forgets
        // nothing. Until a full sync has run, the ids in force are the file's.
        let assigned = match &self.compiler {
            Some(c) => self.ids.assign(&snap.entries, c.ids()),
            None => self.ids.assign(&snap.entries, self.ids.loaded()),
        };
        // The compile runs on a second core while the dataplane gives the
        // entries their counter slots (which need only their ids).
        let listed: Vec<u32> = assigned.rows.iter().map(|r| r.id).collect();
        let (compiler, compiled, prepared) = std::thread::scope(|s| {
            let compiling = s.spawn(|| {
                let c = Compiler::from_numbered(&assigned.rows);
                let out = c.compile();
                (c, out)
            });
            let prepared = self.applier.dataplane_mut().prepare_counters(&listed);
            let (c, out) = compiling.join().expect("the compile thread does not panic");
            (c, out, prepared)
        });
        prepared?;
        // The id file is written and fsynced on another core while the
        // kernel is written, and put in place once the ids are in force.
        let (stats, staged_ids) = std::thread::scope(|s| {
            let (ids, assigned) = (&self.ids, &assigned);
            let staging = (self.ids_path.as_deref())
                .map(|path| s.spawn(move || ids.stage_assigned(path, assigned)));
            let stats = self.applier.apply(compiled);
            let staged = staging.map(|h| h.join().expect("the id file thread does not panic"));
            (stats, staged)
        });
        let stats = stats?;
        self.ids.settle(&assigned);
        self.entries = listed.len();
        let gone = assigned.gone;
        self.compiler = Some(compiler);
        let dp = self.applier.dataplane_mut();
        for p in &current {
            if !snap.allow.contains(p) {
                dp.del_allow(p)?;
            }
        }
        self.applier.set_allow(allow_families(&snap.allow))?;
        let dp = self.applier.dataplane_mut();
        for id in gone {
            dp.forget_hits(id)?;
        }
        dp.tidy()?;
        if let Some(staged) = staged_ids {
            self.ids.saved(staged?)?;
        }
        self.kinds.clear();
        for k in snap.entries.iter().filter_map(kind) {
            *self.kinds.entry(k).or_insert(0) += 1;
        }
        self.allow = snap.allow.len();
        self.rejected = snap.rejected.len();
        self.sync_names(Listed::from_entries(&snap.entries))?;
        Ok(self.report(stats))
    }

    /// Whether [`Engine::sync_changes`] can be used (a full sync happened).
    pub fn has_full_state(&self) -> bool {
        self.compiler.is_some()
    }

    /// Applies changed entries (new value, or None when withdrawn) on top of
    /// the last sync. Local overrides must already be filtered out by the
    /// caller. On error nothing changes: neither the kernel nor the ids.
    pub fn sync_changes(
        &mut self,
        changes: &[(Identity, Option<Entry>)],
    ) -> Result<SyncReport, AgentError> {
        if self.compiler.is_none() {
            return Err(AgentError::DeltaBeforeFullSync);
        }
        // Domain entries are followed through DNS answers, not held in the
        // prefix tables.
        if changes.iter().any(|(i, _)| i.target.domain().is_some()) {
            let mut listed = self.listed.clone();
            listed.apply(changes);
            self.sync_names(listed)?;
        }
        let Some(compiler) = self.compiler.as_mut() else {
            return Err(AgentError::DeltaBeforeFullSync);
        };
        let changes: Vec<&(Identity, Option<Entry>)> = changes
            .iter()
            .filter(|(i, _)| i.prefix().is_some())
            .collect();
        let listed = changes.iter().filter(|(_, e)| e.is_some()).map(|(i, _)| i);
        let withdrawn = changes.iter().filter(|(_, e)| e.is_none()).map(|(i, _)| i);
        let plan = self.ids.plan(listed, withdrawn, |i| compiler.id_of(i));
        let fresh: HashMap<Identity, u32> = plan.added.iter().cloned().collect();
        let mut kinds = self.kinds.clone();
        let mut with_ids: Vec<Change> = Vec::with_capacity(changes.len());
        for (ident, entry) in changes.iter().copied() {
            if let Some(rules) = compiler.rules_of(ident) {
                let action = match rules.iter().flatten().next().map(|r| r.action) {
                    Some(ACTION_MONITOR) => Action::Monitor,
                    _ => Action::Drop,
                };
                let family = ident.prefix().map(|p| p.family());
                if let Some(n) = family.and_then(|f| kinds.get_mut(&(f, action))) {
                    *n = n.saturating_sub(1);
                }
            }
            let with_id = entry.clone().map(|e| {
                if let Some(k) = kind(&e) {
                    *kinds.entry(k).or_insert(0) += 1;
                }
                let id = compiler.id_of(ident).or(fresh.get(ident).copied());
                (e, id.expect("planned"))
            });
            with_ids.push((ident.clone(), with_id));
        }
        kinds.retain(|_, n| *n > 0);
        let (patch, undo) = compiler.update(&with_ids);
        let applied = match &patch {
            Some(p) => self.applier.apply_patch(p),
            None => self.applier.apply(compiler.compile()),
        };
        let stats = match applied {
            Ok(s) => s,
            Err(e) => {
                compiler.revert(undo);
                return Err(e);
            }
        };
        self.kinds = kinds;
        self.entries = (self.entries + plan.added.len()).saturating_sub(plan.removed.len());
        let c: &Compiler = compiler;
        self.ids
            .commit(&plan, self.ids_path.as_deref(), self.entries, || c.ids())?;
        let dp = self.applier.dataplane_mut();
        for (_, id) in &plan.removed {
            dp.forget_hits(*id)?;
        }
        if !plan.removed.is_empty() {
            dp.tidy()?;
        }
        Ok(self.report(stats))
    }

    fn report(&self, stats: ApplyStats) -> SyncReport {
        SyncReport {
            stats,
            entries: self.entries,
            by_kind: self.kinds.iter().map(|(k, n)| (*k, *n)).collect(),
            allow: self.allow,
            rejected: self.rejected,
        }
    }

    /// Prefix entries listed (each identity once).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The id of the listed entry `ident`.
    pub fn id_of(&self, ident: &Identity) -> Option<u32> {
        match &self.compiler {
            Some(c) => c.id_of(ident),
            None => self.ids.loaded_id(ident),
        }
    }

    /// The identities of the listed entries among `wanted` ids, by one pass
    /// over the ids in force (see [`name`]).
    pub fn identities(&self, wanted: impl IntoIterator<Item = u32>) -> FastMap<u32, Identity> {
        match &self.compiler {
            Some(c) => name(c.ids(), wanted),
            None => self.ids.identities(wanted),
        }
    }
}

/// The metric kind of a prefix entry; `None` for a domain entry, which the
/// prefix tables do not hold.
fn kind(e: &Entry) -> Option<(Family, Action)> {
    Some((e.listed_prefix()?.family(), e.action))
}

/// The `Config::allow` bits of the families `prefixes` cover.
fn allow_families(prefixes: &[Prefix]) -> u8 {
    prefixes.iter().fold(0, |bits, p| {
        bits | match p.family() {
            Family::V4 => ALLOW_HAS_V4,
            Family::V6 => ALLOW_HAS_V6,
        }
    })
}

/// Makes glibc serve every allocation of 1 MiB or more with its own
/// mapping, returned whole when freed. By default the threshold rises to
/// the size of the largest block freed so far (up to 32 MiB), after which
/// a full sync's large temporaries (sort buffers, the compiled levels) come
/// from the heap and leave holes between the tables that stay: about
/// 15 MiB of resident memory at a million entries. Called once, at the
/// start of the agent (and of the benchmark, which measures it).
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sets an allocator parameter; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Gives the allocator's free memory back to the system. A full sync of a
/// large list builds and drops tables of hundreds of megabytes; glibc keeps
/// what was freed on its heap (for allocations under its mmap threshold,
/// which rises to 32 MiB after large frees), so without this the agent's
/// resident memory would stay at the sync's peak.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
