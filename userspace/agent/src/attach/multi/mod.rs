//! c2wall as one component of libxdp's multi-program dispatcher, so it
//! shares an interface with programs loaded by xdp-loader or any other
//! libxdp user. We implement the protocol (xdp-tools' `lib/libxdp/
//! protocol.org`, version 2) in Rust instead of linking libxdp: libxdp loads
//! components through libbpf, which cannot open our aya-built object (its
//! legacy map definitions), and our component must reuse the agent's pinned
//! maps. libxdp's own dispatcher object is used, so what we build is
//! byte-for-byte what libxdp would have built.
//!
//! Every change, joining or leaving, builds a new dispatcher with the new
//! set of components (re-attaching the others' freplace programs to it),
//! pins it under the bpffs `xdp/dispatch-IFINDEX-ID/` directory, swaps it
//! onto the interface with one atomic netlink replace, and unpins the old
//! one, all under libxdp's directory lock. A restarted or upgraded agent
//! does the same with its new program in place of its old one, so listed
//! traffic meets a c2wall component at every instant.

mod dispatcher;
mod netlink;
mod pins;

use std::{fs, os::fd::AsFd, path::Path};

use aya::{
    programs::{links::FdLink, Extension, ProgramFd, ProgramInfo},
    Ebpf, EbpfLoader,
};
use c2wall_common::{ALL_MAPS, PROGRAM_NAME};

use self::dispatcher::Slot;
use self::pins::{pin_dir, unpin_dir, Lock};
use super::Attachment;
use crate::config::XdpModeArg;
use crate::error::AgentError;
use crate::loader::{self, OBJECT};
use crate::paths::Paths;

/// Our run priority: before libxdp's default of 50, so listed traffic is
/// dropped before other programs spend time on it.
pub const RUN_PRIO: u32 = 10;
/// XDP_PASS continues the chain; a drop ends it.
const CHAIN_ON_PASS: u32 = 1 << 2;

/// What holds XDP on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupant {
    Nothing,
    /// A libxdp dispatcher (version 2): it can be joined.
    Dispatcher,
    /// A program attached alone: `name (id N)`.
    Alone(String),
}

/// What runs at XDP on `interface` now.
pub fn occupant(interface: &str) -> Result<Occupant, AgentError> {
    let ifindex = loader::interface_index(interface)?;
    let Some(a) = netlink::query(ifindex).map_err(|e| nl_err(interface, e))? else {
        return Ok(Occupant::Nothing);
    };
    let info = program_info(a.prog_id)?;
    Ok(match dispatcher::read_config(&info)? {
        Some(_) => Occupant::Dispatcher,
        None => Occupant::Alone(format!(
            "`{}` (id {})",
            info.name_as_str().unwrap_or("?"),
            a.prog_id
        )),
    })
}

/// Joins (or, for an agent that restarts, rejoins with the new program) the
/// dispatcher on `interface`, creating one if there is none.
///
/// `own_link`: our exclusive XDP link on the interface (the program there
/// is then ours, not a foreign one), unpinned once the new dispatcher is
/// built and just before it goes on (a link would refuse the swap), while
/// our tc program holds the interface.
pub fn join(
    paths: &Paths,
    interface: &str,
    mode: XdpModeArg,
    own_link: Option<&Path>,
) -> Result<Attachment, AgentError> {
    let mine = component_loader(paths)?;
    let adopted = paths.multi_dir().join(interface).exists();
    let mode = rebuild(interface, Some((mine, mode)), own_link)?;
    fs::create_dir_all(paths.multi_dir().join(interface)).map_err(|source| {
        AgentError::WriteFile {
            path: paths.multi_dir().join(interface),
            source,
        }
    })?;
    Ok(Attachment {
        interface: interface.to_string(),
        mode,
        adopted,
        multi: true,
    })
}

/// Removes our component from `interface`, leaving the others running (or
/// nothing at all when ours was the last). True if it was there.
pub fn leave(paths: &Paths, interface: &str) -> bool {
    let marker = paths.multi_dir().join(interface);
    if !marker.exists() {
        return false;
    }
    match rebuild(interface, None, None) {
        Ok(_) => {}
        // The interface is gone, and its dispatcher with it.
        Err(AgentError::Interface { .. }) => {}
        Err(e) => {
            tracing::warn!(interface, error = %e, "leaving the XDP dispatcher");
            return false;
        }
    }
    fs::remove_dir(&marker).is_ok()
}

/// Our object, loaded with its XDP program as an freplace component and the
/// agent's pinned maps (not yet loaded into the kernel: that needs the
/// dispatcher it will replace a slot of).
fn component_loader(paths: &Paths) -> Result<Ebpf, AgentError> {
    let map_paths: Vec<_> = ALL_MAPS.iter().map(|m| (*m, paths.map(m))).collect();
    let mut l = EbpfLoader::new();
    l.extension(PROGRAM_NAME);
    for (name, path) in &map_paths {
        l.map_pin_path(name, path.as_path());
    }
    Ok(l.load(OBJECT)?)
}

struct Component {
    slot: Slot,
    name: String,
    /// Ours is loaded only once the new dispatcher exists.
    prog: Option<Extension>,
}

/// Builds and swaps in a dispatcher with the current components minus any
/// c2wall one, plus `add` (our new component). Returns the XDP mode name.
fn rebuild(
    interface: &str,
    add: Option<(Ebpf, XdpModeArg)>,
    own_link: Option<&Path>,
) -> Result<&'static str, AgentError> {
    let ifindex = loader::interface_index(interface)?;
    let _lock = Lock::acquire()?;
    let current = netlink::query(ifindex).map_err(|e| nl_err(interface, e))?;
    let mut old = None;
    let mut components = Vec::new();
    if let Some(a) = current.filter(|_| own_link.is_none()) {
        let info = program_info(a.prog_id)?;
        let Some(config) = dispatcher::read_config(&info)? else {
            return Err(AgentError::Interface {
                name: interface.to_string(),
                message: format!(
                    "XDP program `{}` (id {}) runs here alone, not through a libxdp \
                     dispatcher: c2wall cannot join it; load it with xdp-loader instead, \
                     or use `--attach exclusive` after unloading it",
                    info.name_as_str().unwrap_or("?"),
                    a.prog_id
                ),
            });
        };
        let dir = pin_dir(ifindex, a.prog_id);
        for (i, slot) in config.slots().into_iter().enumerate() {
            let path = dir.join(format!("prog{i}-prog"));
            let name = ProgramInfo::from_pin(&path)?
                .name_as_str()
                .unwrap_or("")
                .to_string();
            if name == PROGRAM_NAME {
                continue;
            }
            components.push(Component {
                slot,
                name,
                prog: Some(Extension::from_pin(&path)?),
            });
        }
        old = Some((info.fd()?, a.mode_flag, dir));
    }
    let (mut mine, want_mode) = match add {
        Some((ebpf, mode)) => (Some(ebpf), mode),
        None => (None, XdpModeArg::Auto),
    };
    if mine.is_some() {
        components.push(Component {
            slot: Slot {
                chain_call_actions: CHAIN_ON_PASS,
                run_prio: RUN_PRIO,
                program_flags: 0,
            },
            name: PROGRAM_NAME.to_string(),
            prog: None,
        });
    }
    // libxdp's order: run priority, then name.
    components.sort_by(|a, b| (a.slot.run_prio, &a.name).cmp(&(b.slot.run_prio, &b.name)));
    if components.len() > dispatcher::MAX_SLOTS {
        return Err(AgentError::Interface {
            name: interface.to_string(),
            message: format!(
                "the XDP dispatcher already holds {} programs, its maximum",
                dispatcher::MAX_SLOTS
            ),
        });
    }
    if components.is_empty() {
        // Ours was the last: take the dispatcher off the interface.
        if let Some((old_fd, mode_flag, dir)) = old {
            netlink::replace(ifindex, None, Some(old_fd.as_fd()), mode_flag)
                .map_err(|e| nl_err(interface, e))?;
            unpin_dir(&dir);
        }
        return Ok("multi");
    }
    let slots: Vec<Slot> = components.iter().map(|c| c.slot).collect();
    let disp = dispatcher::load(&slots)?;
    let disp_fd = dispatcher::program_fd(&disp)?;
    let disp_id = disp
        .program(dispatcher::PROGRAM)
        .ok_or(AgentError::MissingMap(dispatcher::PROGRAM))?
        .info()?
        .id();
    let new_dir = pin_dir(ifindex, disp_id);
    if let Err(e) = link_components(&mut components, mine.as_mut(), disp_fd, &new_dir) {
        unpin_dir(&new_dir);
        return Err(e);
    }
    if let Some(link) = own_link {
        super::unpin_link(link);
    }
    let (expected, mode_flags): (_, Vec<(u32, &'static str)>) = match &old {
        Some((fd, flag, _)) => (Some(fd.as_fd()), vec![(*flag, mode_name(*flag))]),
        None => (
            None,
            match want_mode {
                XdpModeArg::Native => vec![(netlink::XDP_FLAGS_DRV_MODE, "native")],
                XdpModeArg::Generic => vec![(netlink::XDP_FLAGS_SKB_MODE, "generic")],
                XdpModeArg::Auto => vec![
                    (netlink::XDP_FLAGS_DRV_MODE, "native"),
                    (netlink::XDP_FLAGS_SKB_MODE, "generic"),
                ],
            },
        ),
    };
    let mut last = None;
    for (flag, name) in mode_flags {
        match netlink::replace(ifindex, Some(disp_fd.as_fd()), expected, flag) {
            Ok(()) => {
                if let Some((_, _, dir)) = &old {
                    unpin_dir(dir);
                }
                return Ok(name);
            }
            Err(e) => last = Some(e),
        }
    }
    unpin_dir(&new_dir);
    Err(nl_err(
        interface,
        last.unwrap_or_else(|| std::io::Error::other("no XDP mode to try")),
    ))
}

/// Attaches each component to its slot of the new dispatcher (loading ours
/// first) and pins link and program as libxdp does: `prog<i>-link`,
/// `prog<i>-prog`.
fn link_components(
    components: &mut [Component],
    mut mine: Option<&mut Ebpf>,
    disp_fd: &ProgramFd,
    dir: &Path,
) -> Result<(), AgentError> {
    fs::create_dir_all(dir).map_err(|source| AgentError::WriteFile {
        path: dir.into(),
        source,
    })?;
    let single = components.len() == 1;
    for (i, c) in components.iter_mut().enumerate() {
        // libxdp replaces the whole dispatcher function when there is one
        // component, a slot otherwise.
        let func = if single {
            dispatcher::PROGRAM.to_string()
        } else {
            format!("prog{i}")
        };
        let ext: &mut Extension = match c.prog.as_mut() {
            Some(p) => p,
            None => {
                let e = mine
                    .as_deref_mut()
                    .ok_or(AgentError::MissingMap(PROGRAM_NAME))?;
                let p: &mut Extension = e
                    .program_mut(PROGRAM_NAME)
                    .ok_or(AgentError::MissingMap(PROGRAM_NAME))?
                    .try_into()?;
                let target = disp_fd.try_clone().map_err(|e| {
                    AgentError::Dispatcher(format!("duplicating its program fd: {e}"))
                })?;
                p.load(target, &func).map_err(|e| match &e {
                    aya::programs::ProgramError::LoadError { io_error, .. }
                        if io_error.raw_os_error() == Some(libc::EPERM) =>
                    {
                        AgentError::FreplaceRefused(e.to_string())
                    }
                    _ => AgentError::from(e),
                })?;
                p
            }
        };
        let id = ext.attach_to_program(disp_fd, &func)?;
        let link: FdLink = ext.take_link(id)?.into();
        let link_path = dir.join(format!("prog{i}-link"));
        link.pin(&link_path).map_err(|source| AgentError::Pin {
            path: link_path,
            source,
        })?;
        let prog_path = dir.join(format!("prog{i}-prog"));
        ext.pin(&prog_path).map_err(|source| AgentError::Pin {
            path: prog_path,
            source,
        })?;
    }
    Ok(())
}

fn program_info(id: u32) -> Result<ProgramInfo, AgentError> {
    for p in aya::programs::loaded_programs() {
        let p = p?;
        if p.id() == id {
            return Ok(p);
        }
    }
    Err(AgentError::Dispatcher(format!(
        "program {id} attached to the interface vanished while reading it"
    )))
}

fn mode_name(flag: u32) -> &'static str {
    if flag == netlink::XDP_FLAGS_DRV_MODE {
        "native"
    } else {
        "generic"
    }
}

fn nl_err(interface: &str, e: std::io::Error) -> AgentError {
    AgentError::Interface {
        name: interface.to_string(),
        message: format!("netlink: {e}"),
    }
}
