//! The same verdict logic at tc ingress: a tcx link (kernels 6.6 and later,
//! pinned like the XDP link) or a filter on the clsact qdisc.
//!
//! Our tcx link goes first in the interface's tcx chain, so a program before
//! it cannot end the chain with "pass" before listed traffic is dropped; the
//! program returns "next" for what it passes, so programs after it still run.

use std::{fs, io};

use aya::{
    programs::{
        tc::{
            qdisc_add_clsact, qdisc_detach_program, NlOptions, SchedClassifierLink,
            TcAttachOptions, TcHandle,
        },
        LinkOrder, SchedClassifier, TcAttachType, TcError,
    },
    util::KernelVersion,
    Ebpf,
};
use c2wall_common::TC_PROGRAM_NAME;

use aya::programs::links::FdLink;

use super::{pinned, replace_pin, unpin_link, Attachment};
use crate::error::AgentError;
use crate::loader;
use crate::paths::Paths;

/// Our clsact filter's place: a fixed priority and handle, so a restarted
/// agent finds and replaces its own filter (atomically, in place).
const CLSACT_PRIORITY: u16 = 0xc2;
const CLSACT_HANDLE: TcHandle = TcHandle::new(0, 0xc2);

pub fn attach(
    ebpf: &mut Ebpf,
    paths: &Paths,
    interface: &str,
    force_clsact: bool,
) -> Result<Attachment, AgentError> {
    let prog = loaded(ebpf)?;
    if force_clsact || !has_tcx() {
        return attach_clsact(prog, paths, interface);
    }
    let link_path = paths.link(interface);
    if let Some(fd) = pinned(&link_path)? {
        if let Ok(link) = SchedClassifierLink::try_from(fd) {
            prog.attach_to_link(link)?;
            return Ok(Attachment {
                interface: interface.to_string(),
                mode: "tcx",
                adopted: true,
                multi: false,
            });
        }
    }
    let id = prog
        .attach_with_options(
            interface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::first()),
        )
        .map_err(|e| AgentError::Interface {
            name: interface.to_string(),
            message: format!("cannot attach at tcx ingress: {e}"),
        })?;
    let link = prog.take_link(id)?;
    let fd = link.try_into().map_err(|source| AgentError::Link {
        path: link_path.clone(),
        source,
    })?;
    replace_pin(fd, &link_path)?;
    remove_clsact(paths, interface);
    Ok(Attachment {
        interface: interface.to_string(),
        mode: "tcx",
        adopted: false,
        multi: false,
    })
}

fn attach_clsact(
    prog: &mut SchedClassifier,
    paths: &Paths,
    interface: &str,
) -> Result<Attachment, AgentError> {
    let err = |message: String| AgentError::Interface {
        name: interface.to_string(),
        message,
    };
    add_clsact(interface)?;
    let marker = paths.clsact_dir().join(interface);
    let adopted = marker.exists();
    // Replacing a filter at the same priority and handle is atomic (the
    // kernel swaps the program under the filter); creating one is not a
    // replacement, so the first attach asks for a new filter.
    let result = if adopted {
        SchedClassifierLink::attached(
            interface,
            TcAttachType::Ingress,
            CLSACT_PRIORITY,
            CLSACT_HANDLE,
            None,
        )
        .map_err(|e| err(e.to_string()))
        .and_then(|link| prog.attach_to_link(link).map_err(AgentError::from))
    } else {
        prog.attach_with_options(
            interface,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions {
                priority: CLSACT_PRIORITY,
                handle: CLSACT_HANDLE,
                classid: None,
            }),
        )
        .map_err(|e| err(format!("cannot attach at clsact ingress: {e}")))
    };
    let id = result?;
    // The filter stays after we exit: forget the link without detaching.
    let link = prog.take_link(id)?;
    std::mem::forget(link);
    fs::create_dir_all(&marker).map_err(|source| AgentError::WriteFile {
        path: marker.clone(),
        source,
    })?;
    // A link of an earlier hook goes only now that the filter is in place.
    let link_path = paths.link(interface);
    if link_path.exists() {
        unpin_link(&link_path);
    }
    Ok(Attachment {
        interface: interface.to_string(),
        mode: "clsact",
        adopted,
        multi: false,
    })
}

/// Removes our clsact filter from `interface` if we put one there; true if
/// it did.
pub fn remove_clsact(paths: &Paths, interface: &str) -> bool {
    let marker = paths.clsact_dir().join(interface);
    if !marker.exists() {
        return false;
    }
    match qdisc_detach_program(interface, TcAttachType::Ingress, TC_PROGRAM_NAME) {
        Ok(()) => {}
        // The interface (and its qdisc) is gone, or the filter already is.
        Err(TcError::IoError(e))
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV) => {}
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::ENODEV) => {}
        Err(e) => {
            tracing::warn!(interface, error = %e, "removing the clsact filter");
            return false;
        }
    }
    fs::remove_dir(&marker).is_ok()
}

/// Our tc program holding `interface` at tc ingress while the XDP
/// attachment changes form; it lets go when dropped.
pub enum Bridge {
    /// First in the tcx chain, unpinned: closing the link detaches it.
    Tcx { _held: FdLink },
    /// A clsact filter of its own priority (kernels without tcx), removed
    /// on drop.
    Clsact(Option<SchedClassifierLink>),
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Bridge::Clsact(link) = self {
            if let Some(l) = link.take() {
                use aya::programs::links::Link;
                if let Err(e) = l.detach() {
                    tracing::warn!(error = %e, "removing the temporary clsact filter");
                }
            }
        }
    }
}

/// The bridge's clsact place, apart from the persistent filter's.
const BRIDGE_PRIORITY: u16 = CLSACT_PRIORITY + 1;
const BRIDGE_HANDLE: TcHandle = TcHandle::new(0, 0xc3);

/// Puts our tc program on `interface` for the length of an XDP change.
pub fn bridge(ebpf: &mut Ebpf, interface: &str) -> Result<Bridge, AgentError> {
    let prog = loaded(ebpf)?;
    let err = |e: aya::programs::ProgramError| AgentError::Interface {
        name: interface.to_string(),
        message: format!("cannot hold tc ingress during the XDP change: {e}"),
    };
    if has_tcx() {
        let id = prog
            .attach_with_options(
                interface,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )
            .map_err(err)?;
        let fd = prog
            .take_link(id)?
            .try_into()
            .map_err(|source| AgentError::Link {
                path: interface.into(),
                source,
            })?;
        return Ok(Bridge::Tcx { _held: fd });
    }
    add_clsact(interface)?;
    let id = prog
        .attach_with_options(
            interface,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions {
                priority: BRIDGE_PRIORITY,
                handle: BRIDGE_HANDLE,
                classid: None,
            }),
        )
        .map_err(err)?;
    Ok(Bridge::Clsact(Some(prog.take_link(id)?)))
}

/// The tc program, loaded: already so when tc is the configured hook; on
/// the way from XDP (auto beside a foreign program, or a bridge) it is
/// loaded here.
fn loaded(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, AgentError> {
    let prog = loader::tc_program(ebpf)?;
    if prog.fd().is_err() {
        prog.load()?;
    }
    Ok(prog)
}

/// tcx exists from kernel 6.6.
fn has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// The clsact qdisc on `interface`, whether it was there or not.
fn add_clsact(interface: &str) -> Result<(), AgentError> {
    match qdisc_add_clsact(interface) {
        Ok(()) | Err(TcError::AlreadyAttached) => Ok(()),
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(AgentError::Interface {
            name: interface.to_string(),
            message: format!("cannot add the clsact qdisc: {e}"),
        }),
    }
}
