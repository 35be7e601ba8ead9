//! The XDP program alone on an interface, through a pinned BPF link.

use aya::{
    programs::{links::FdLink, xdp::XdpLink, Xdp, XdpMode},
    Ebpf,
};

use super::{pinned, replace_pin, tc, Attachment};
use crate::config::XdpModeArg;
use crate::error::AgentError;
use crate::loader;
use crate::paths::Paths;

pub fn attach(
    ebpf: &mut Ebpf,
    paths: &Paths,
    interface: &str,
    mode: XdpModeArg,
) -> Result<Attachment, AgentError> {
    let link_path = paths.link(interface);
    let prog = loader::xdp_program(ebpf)?;
    let old = pinned(&link_path)?;
    if let Some(fd) = old {
        // An XDP link of ours: switch it to this program (atomic). A tcx link
        // (the hook changed) fails the conversion and is replaced below.
        if let Ok(link) = XdpLink::try_from(fd) {
            prog.attach_to_link(link)?;
            return Ok(Attachment {
                interface: interface.to_string(),
                mode: "kept",
                adopted: true,
                multi: false,
            });
        }
    }
    let fd = attach_new(prog, interface, mode)?;
    replace_pin(fd.1, &link_path)?;
    tc::remove_clsact(paths, interface);
    Ok(Attachment {
        interface: interface.to_string(),
        mode: fd.0,
        adopted: false,
        multi: false,
    })
}

fn attach_new(
    prog: &mut Xdp,
    interface: &str,
    mode: XdpModeArg,
) -> Result<(&'static str, FdLink), AgentError> {
    let iface_err = |message: String| AgentError::Interface {
        name: interface.to_string(),
        message,
    };
    let tries: &[(XdpMode, &'static str)] = match mode {
        XdpModeArg::Native => &[(XdpMode::Driver, "native")],
        XdpModeArg::Generic => &[(XdpMode::Skb, "generic")],
        XdpModeArg::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
    };
    let mut last = String::new();
    for (m, name) in tries {
        match prog.attach(interface, *m) {
            Ok(id) => {
                let link = prog.take_link(id)?;
                let fd: FdLink = link.try_into().map_err(|e| {
                    iface_err(format!(
                        "kernel attached without a BPF link ({e}); kernel too old"
                    ))
                })?;
                return Ok((name, fd));
            }
            Err(e) => {
                tracing::debug!(interface, mode = name, error = %e, "attach failed");
                last = format!("{name} mode: {e}");
            }
        }
    }
    Err(iface_err(format!(
        "cannot attach XDP ({last}); if another XDP program holds the interface, \
         use `--attach multi` to share it through the libxdp dispatcher, or \
         `--attach-hook tc`"
    )))
}
