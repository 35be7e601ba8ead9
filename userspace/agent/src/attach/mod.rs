//! Attaching the loaded program to interfaces, adopting what an earlier agent
//! left attached, and detaching.
//!
//! Under the pin dir, `links/<iface>` is the BPF link that keeps the program
//! attached with no process holding it: an XDP link (`xdp.rs`) or a tcx link
//! (`tc.rs`). The classic clsact hook has no link; `tc-clsact/<iface>` (an
//! empty directory) records that the interface has our filter.
//!
//! Adoption never opens a gap: a pinned link of the configured kind is
//! switched to the new program with BPF_LINK_UPDATE (atomic); a change of
//! hook attaches the new one first and only then removes the old one.

mod tc;
mod xdp;

use std::{fs, path::Path};

use aya::{
    programs::links::{FdLink, PinnedLink},
    Ebpf,
};

use crate::config::{HookArg, XdpModeArg};
use crate::error::AgentError;
use crate::paths::Paths;

/// How the program goes onto an interface.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub hook: HookArg,
    pub xdp_mode: XdpModeArg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub interface: String,
    /// `native` or `generic` (XDP), `tcx` or `clsact` (tc), or `kept` when an
    /// existing XDP link was adopted.
    pub mode: &'static str,
    pub adopted: bool,
}

/// Attaches to `interface` as `plan` says, or adopts what is attached there.
pub fn attach(
    ebpf: &mut Ebpf,
    paths: &Paths,
    interface: &str,
    plan: Plan,
) -> Result<Attachment, AgentError> {
    match plan.hook {
        HookArg::Xdp => xdp::attach(ebpf, paths, interface, plan.xdp_mode),
        HookArg::Tc => tc::attach(ebpf, paths, interface, false),
        HookArg::TcClsact => tc::attach(ebpf, paths, interface, true),
    }
}

/// Whether something of ours holds `interface` (what /readyz checks).
pub fn is_held(paths: &Paths, interface: &str) -> bool {
    paths.link(interface).exists() || paths.clsact_dir().join(interface).exists()
}

/// Detaches from interfaces that are no longer configured.
pub fn detach_stale(paths: &Paths, keep: &[String]) -> Vec<String> {
    let mut gone = Vec::new();
    if let Ok(dir) = fs::read_dir(paths.links_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) && unpin_link(&e.path()) {
                gone.push(name);
            }
        }
    }
    if let Ok(dir) = fs::read_dir(paths.clsact_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) && tc::remove_clsact(paths, &name) && !gone.contains(&name) {
                gone.push(name);
            }
        }
    }
    gone
}

/// Pins `link` at `path` in place of what is pinned there, keeping the old
/// one attached until the new one is pinned: pin under a temporary name (in
/// a sibling directory: bpffs refuses dots in names), drop the old pin
/// (which detaches the old link), rename.
fn replace_pin(link: FdLink, path: &Path) -> Result<(), AgentError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(AgentError::Bpffs(format!(
            "{} is not a pin path",
            path.display()
        )));
    };
    let staging = dir.with_file_name("links-staging");
    fs::create_dir_all(&staging).map_err(|source| AgentError::WriteFile {
        path: staging.clone(),
        source,
    })?;
    let tmp = staging.join(name);
    let _ = fs::remove_file(&tmp);
    link.pin(&tmp).map_err(|source| AgentError::Pin {
        path: tmp.clone(),
        source,
    })?;
    if path.exists() {
        unpin_link(path);
    }
    fs::rename(&tmp, path).map_err(|source| AgentError::WriteFile {
        path: path.into(),
        source,
    })
}

fn unpin_link(path: &Path) -> bool {
    match PinnedLink::from_pin(path) {
        // Dropping the last reference (fd, no pin) detaches.
        Ok(l) => l.unpin().is_ok(),
        // Not a link (or already gone): remove the file so it stops confusing us.
        Err(_) => fs::remove_file(path).is_ok(),
    }
}

fn pinned(path: &Path) -> Result<Option<FdLink>, AgentError> {
    if !path.exists() {
        return Ok(None);
    }
    let link = PinnedLink::from_pin(path).map_err(|source| AgentError::Link {
        path: path.into(),
        source,
    })?;
    Ok(Some(FdLink::from(link)))
}
