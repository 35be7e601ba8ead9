use thiserror::Error;

/// Why a prefix, port, protocol or entry was refused. Messages name the input.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("`{input}`: prefix length {len} is out of range (max {max})")]
    BadPrefixLength { input: String, len: String, max: u8 },
    #[error("`{input}` has host bits set; did you mean {canonical}?")]
    HostBitsSet { input: String, canonical: String },
    #[error("`{0}` is not a port number (1-65535)")]
    BadPort(String),
    #[error("`{0}` is not a protocol (tcp or udp)")]
    BadProtocol(String),
    #[error("`{0}` is not an action (drop or monitor)")]
    BadAction(String),
    #[error("`{0}` is not a direction (to, from or both)")]
    BadDirection(String),
    #[error("`{input}`: label `{label}` {why}")]
    BadDomain {
        input: String,
        label: String,
        why: String,
    },
    #[error("domain entry `{domain}` cannot carry {what}")]
    DomainWith { domain: String, what: &'static str },
    #[error("label {0}")]
    BadLabel(String),
}

/// A wire message or API field refused: the path of the field (with its
/// index inside a batch, `upserts[3].key.prefix`) and why. INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct WireError {
    pub field: String,
    pub reason: String,
}

impl WireError {
    pub(crate) fn new(field: &str, reason: impl Into<String>) -> Self {
        WireError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
    /// Prefixes the field path with its container (`upserts[3]`).
    pub fn within(mut self, container: &str) -> Self {
        self.field = format!("{container}.{}", self.field);
        self
    }
}
