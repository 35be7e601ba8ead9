//! The identity a c2wall certificate carries: a SAN URI
//! `spiffe://c2wall/ROLE/NAME` (the SPIFFE ID form, so that other tooling
//! reads it too). The coordinator takes the caller's role and name from it;
//! the name is what the audit log records.

use std::fmt;

/// The URI prefix of c2wall identities.
pub const URI_PREFIX: &str = "spiffe://c2wall/";

/// Roles a certificate may name. `coordinator` is the server's own; it grants
/// nothing when presented by a caller.
/// `downstream` is another coordinator following this one (an ISP's): it may
/// subscribe and report as itself, like an agent.
pub const ROLES: &[&str] = &[
    "agent",
    "downstream",
    "reader",
    "publisher",
    "admin",
    "coordinator",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIdentity {
    pub role: String,
    pub name: String,
}

impl fmt::Display for CertIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URI_PREFIX}{}/{}", self.role, self.name)
    }
}

/// Names become file names and URI path segments: letters, digits, `.-_`,
/// not starting with a dot, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name `{name}`: use 1-64 letters, digits, `.`, `-` or `_` (not starting with `.`)"
        ))
    }
}

impl CertIdentity {
    pub fn new(role: &str, name: &str) -> Result<Self, String> {
        if !ROLES.contains(&role) {
            return Err(format!("role `{role}`: one of {}", ROLES.join(", ")));
        }
        check_name(name)?;
        Ok(CertIdentity {
            role: role.to_string(),
            name: name.to_string(),
        })
    }

    /// Parses `spiffe://c2wall/ROLE/NAME`; None for any other URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (role, name) = uri.strip_prefix(URI_PREFIX)?.split_once('/')?;
        CertIdentity::new(role, name).ok()
    }

    /// The identity in a DER certificate's subject alternative names. The
    /// certificate must already be verified: this only reads it.
    pub fn from_der(der: &[u8]) -> Result<Option<Self>, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("subject alternative names: {e}"))?;
        let mut found = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if let Some(id) = CertIdentity::from_uri(uri) {
                    if found.is_some() {
                        // Two identities in one certificate: trust neither.
                        return Err("certificate names more than one c2wall identity".into());
                    }
                    found = Some(id);
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_bad_ones_are_not_identities() {
        let id = CertIdentity::new("agent", "edge-1.tokyo").unwrap();
        assert_eq!(id.to_string(), "spiffe://c2wall/agent/edge-1.tokyo");
        assert_eq!(CertIdentity::from_uri(&id.to_string()), Some(id));
        for bad in [
            "spiffe://c2wall/root/x",
            "spiffe://c2wall/agent/",
            "spiffe://c2wall/agent/a/b",
            "spiffe://other/agent/x",
            "spiffe://c2wall/agent/../x",
        ] {
            assert_eq!(CertIdentity::from_uri(bad), None, "{bad}");
        }
        assert!(check_name(".hidden").is_err() && check_name("a b").is_err());
    }
}
