//! Attaching the loaded program to interfaces, adopting what an earlier agent
//! left attached, and detaching.
//!
//! Under the pin dir, `links/<iface>` is the BPF link that keeps the program
//! attached with no process holding it: an XDP link (`xdp.rs`, exclusive) or
//! a tcx link (`tc.rs`). The classic clsact hook has no link;
//! `tc-clsact/<iface>` (an empty directory) records that the interface has
//! our filter. In a libxdp dispatcher (`multi/`) the pins are libxdp's;
//! `xdp-multi/<iface>` records that one of the components is ours.
//!
//! Adoption never opens a gap: a pinned link of the configured kind is
//! switched to the new program with BPF_LINK_UPDATE (atomic), a dispatcher
//! is rebuilt with the new component and swapped in atomically, and a
//! change of hook attaches the new one first and only then removes the old
//! one. Between exclusive and multi XDP (which the kernel cannot swap in one
//! step: a BPF link and a netlink attachment exclude each other) our tc
//! program holds the interface while the XDP form changes.

mod multi;
mod tc;
mod xdp;

use std::{fs, path::Path};

use aya::{
    programs::links::{FdLink, PinnedLink},
    Ebpf,
};

use crate::config::{AttachArg, HookArg, XdpModeArg};
use crate::error::AgentError;
use crate::paths::Paths;

/// How the program goes onto an interface.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub hook: HookArg,
    pub attach: AttachArg,
    pub xdp_mode: XdpModeArg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub interface: String,
    /// `native` or `generic` (XDP), `tcx` or `clsact` (tc), or `kept` when an
    /// existing XDP link was adopted.
    pub mode: &'static str,
    pub adopted: bool,
    /// Joined a libxdp dispatcher (the mode is that dispatcher's).
    pub multi: bool,
}

/// Attaches to `interface` as `plan` says, or adopts what is attached there.
pub fn attach(
    ebpf: &mut Ebpf,
    paths: &Paths,
    interface: &str,
    plan: Plan,
) -> Result<Attachment, AgentError> {
    let in_dispatcher = paths.multi_dir().join(interface).exists();
    let a = match plan.hook {
        HookArg::Xdp => attach_xdp(ebpf, paths, interface, plan, in_dispatcher)?,
        HookArg::Tc => tc::attach(ebpf, paths, interface, false)?,
        HookArg::TcClsact => tc::attach(ebpf, paths, interface, true)?,
    };
    // What an earlier hook left: removed only now that the new one holds.
    // (tc::attach and xdp::attach clear the link and clsact forms.)
    if plan.hook != HookArg::Xdp && in_dispatcher {
        multi::leave(paths, interface);
    }
    if a.multi {
        let link = paths.link(interface);
        if link.exists() {
            unpin_link(&link);
        }
        tc::remove_clsact(paths, interface);
    }
    Ok(a)
}

/// XDP as `plan.attach` says: alone, in a libxdp dispatcher, or at tc
/// beside a program that holds XDP alone (auto).
fn attach_xdp(
    ebpf: &mut Ebpf,
    paths: &Paths,
    interface: &str,
    plan: Plan,
    in_dispatcher: bool,
) -> Result<Attachment, AgentError> {
    let link = paths.link(interface);
    // Our exclusive XDP link holds the interface now.
    let ours_alone = pinned(&link)?.is_some_and(is_xdp_link);
    let a = match xdp_form(interface, plan.attach, in_dispatcher, ours_alone)? {
        Form::Exclusive => {
            let _bridge = if in_dispatcher {
                let b = tc::bridge(ebpf, interface)?;
                multi::leave(paths, interface);
                Some(b)
            } else {
                None
            };
            xdp::attach(ebpf, paths, interface, plan.xdp_mode)?
        }
        Form::Multi => {
            // Held until this arm ends, whichever way it goes.
            let _bridge = if ours_alone {
                Some(tc::bridge(ebpf, interface)?)
            } else {
                None
            };
            let own = ours_alone.then_some(link.as_path());
            match multi::join(paths, interface, plan.xdp_mode, own) {
                Ok(a) => a,
                Err(AgentError::FreplaceRefused(why)) if plan.attach == AttachArg::Auto => {
                    tracing::warn!(
                        interface,
                        reason = %why,
                        "a libxdp dispatcher holds XDP here but this kernel refuses \
                         freplace components: enforcing at tc ingress instead"
                    );
                    tc::attach(ebpf, paths, interface, false)?
                }
                Err(e) => return Err(e),
            }
        }
        Form::TcBeside(other) => {
            tracing::warn!(
                interface,
                "XDP program {other} holds this interface alone (not through a libxdp \
                 dispatcher): enforcing at tc ingress beside it"
            );
            tc::attach(ebpf, paths, interface, false)?
        }
    };
    Ok(a)
}

/// How the XDP hook is taken on one interface.
enum Form {
    Exclusive,
    Multi,
    /// Auto mode with a foreign program alone at XDP: tc ingress instead.
    TcBeside(String),
}

fn xdp_form(
    interface: &str,
    attach: AttachArg,
    in_dispatcher: bool,
    ours_alone: bool,
) -> Result<Form, AgentError> {
    Ok(match attach {
        AttachArg::Exclusive => Form::Exclusive,
        AttachArg::Multi => Form::Multi,
        AttachArg::Auto if ours_alone => Form::Exclusive,
        AttachArg::Auto if in_dispatcher => Form::Multi,
        AttachArg::Auto => match multi::occupant(interface)? {
            multi::Occupant::Nothing => Form::Exclusive,
            multi::Occupant::Dispatcher => Form::Multi,
            multi::Occupant::Alone(other) => Form::TcBeside(other),
        },
    })
}

fn is_xdp_link(fd: FdLink) -> bool {
    aya::programs::xdp::XdpLink::try_from(fd).is_ok()
}

/// Whether something of ours holds `interface` (what /readyz checks).
pub fn is_held(paths: &Paths, interface: &str) -> bool {
    paths.link(interface).exists()
        || paths.clsact_dir().join(interface).exists()
        || paths.multi_dir().join(interface).exists()
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
    if let Ok(dir) = fs::read_dir(paths.multi_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) && multi::leave(paths, &name) && !gone.contains(&name) {
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
