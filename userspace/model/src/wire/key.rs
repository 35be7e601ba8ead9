//! Entry keys on the wire: a prefix with its protocol and port, or a domain.

use c2wall_proto::v1 as pb;

use super::WireError;
use crate::{limits, Domain, Identity, PortScope, Prefix, Protocol, Target};

pub fn identity_from_wire(k: &pb::EntryKey) -> Result<Identity, WireError> {
    if !k.domain.is_empty() {
        if !k.prefix.is_empty() {
            return Err(WireError::new(
                "domain",
                "both prefix and domain are set; an entry lists one of them",
            ));
        }
        if k.protocol != 0 || k.port != 0 {
            return Err(WireError::new(
                "domain",
                "a domain entry has no protocol or port",
            ));
        }
        limits::text("domain", &k.domain, limits::NAME_BYTES)?;
        let domain: Domain = k
            .domain
            .parse()
            .map_err(|e: crate::ModelError| WireError::new("domain", e.to_string()))?;
        return Ok(Identity {
            target: Target::Domain(domain),
            scope: None,
        });
    }
    let prefix: Prefix = k
        .prefix
        .trim()
        .parse()
        .map_err(|e: crate::ModelError| WireError::new("prefix", e.to_string()))?;
    let scope = match pb::Protocol::try_from(k.protocol) {
        Ok(pb::Protocol::Unspecified) if k.port == 0 => None,
        Ok(pb::Protocol::Unspecified) => {
            return Err(WireError::new(
                "port",
                format!("port {} given without a protocol (tcp or udp)", k.port),
            ))
        }
        Ok(p) => {
            let protocol = if p == pb::Protocol::Tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let port = u16::try_from(k.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    WireError::new(
                        "port",
                        format!("`{}` is not a port number (1-65535)", k.port),
                    )
                })?;
            Some(PortScope { protocol, port })
        }
        Err(_) => {
            return Err(WireError::new(
                "protocol",
                format!("unknown protocol {}", k.protocol),
            ))
        }
    };
    Ok(Identity {
        target: Target::Prefix(prefix),
        scope,
    })
}

/// A port scope as the key's protocol and port (none: unspecified, 0).
pub(super) fn scope_to_wire(scope: Option<PortScope>) -> (pb::Protocol, u16) {
    match scope {
        None => (pb::Protocol::Unspecified, 0),
        Some(PortScope {
            protocol: Protocol::Tcp,
            port,
        }) => (pb::Protocol::Tcp, port),
        Some(PortScope {
            protocol: Protocol::Udp,
            port,
        }) => (pb::Protocol::Udp, port),
    }
}

pub fn identity_to_wire(i: &Identity) -> pb::EntryKey {
    let (protocol, port) = scope_to_wire(i.scope);
    match &i.target {
        Target::Prefix(p) => pb::EntryKey {
            prefix: p.text(),
            protocol: protocol as i32,
            port: port as u32,
            domain: String::new(),
        },
        Target::Domain(d) => pb::EntryKey {
            domain: d.to_string(),
            ..Default::default()
        },
    }
}
