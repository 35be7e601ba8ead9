//! Who may call what: the caller's identity and role, from its client
//! certificate or a bearer token, checked on every RPC before it reaches a
//! handler, and a per-identity rate limit on the calls that change the list.
//!
//! Roles: `agent` (subscribe, report status and sightings), `downstream`
//! (another coordinator following this one: the same calls as an agent, as
//! itself, and its reports mark it as a coordinator), `reader` (list,
//! get, explain, history, agents, feeds, sightings, protected, pending,
//! audit), `publisher` (a reader that may also publish and import, within the
//! sources the coordinator's `[publishers]` table allows it), `admin`
//! (everything: rollback, guards, confirmations, kill switch, objections).
//! No identity is UNAUTHENTICATED, an identity without the role
//! PERMISSION_DENIED; both are logged and counted. The caller's name in the
//! audit log is the verified identity, not a header it could forge.
//!
//! A client certificate (verified against `--tls-client-ca` during the TLS
//! handshake) names its role and name as `spiffe://c2wall/ROLE/NAME`; when a
//! caller presents one, it is the identity and a bearer token is not looked
//! at. Otherwise the tokens file holds `SHA256-HEX ROLE NAME` lines
//! (`c2wall-coordinator token --role R --name N` makes one); tokens
//! themselves are never stored.

mod layer;

pub use layer::{AuthLayer, Authed};

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use sha2::{Digest, Sha256};
use tonic::Status;

use crate::error::CoordError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Agent,
    Downstream,
    Reader,
    Publisher,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "agent" => Role::Agent,
            "downstream" => Role::Downstream,
            "reader" => Role::Reader,
            "publisher" => Role::Publisher,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
    /// Whether this role may call a method that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Agent | Role::Downstream, r) => r == Role::Agent,
            (Role::Publisher, Role::Publisher | Role::Reader) => true,
            (Role::Reader, Role::Reader) => true,
            _ => false,
        }
    }
}

/// The role each method needs (last path segment); unknown methods need admin.
pub fn needed(method: &str) -> Role {
    match method {
        "Subscribe" | "ReportStatus" | "ReportSightings" => Role::Agent,
        "List" | "Get" | "Explain" | "History" | "Agents" | "Feeds" | "Sightings" | "Protected"
        | "Pending" | "Audit" | "RolloutStatus" => Role::Reader,
        "Publish" | "Import" => Role::Publisher,
        _ => Role::Admin,
    }
}

/// Every method of the two services, for tests and docs.
pub const METHODS: &[(&str, &str)] = &[
    ("AgentSync", "Subscribe"),
    ("AgentSync", "ReportStatus"),
    ("AgentSync", "ReportSightings"),
    ("Publisher", "Publish"),
    ("Publisher", "List"),
    ("Publisher", "Get"),
    ("Publisher", "Explain"),
    ("Publisher", "History"),
    ("Publisher", "Rollback"),
    ("Publisher", "Agents"),
    ("Publisher", "Import"),
    ("Publisher", "Feeds"),
    ("Publisher", "Sightings"),
    ("Publisher", "Protected"),
    ("Publisher", "Protect"),
    ("Publisher", "Pending"),
    ("Publisher", "ResolvePending"),
    ("Publisher", "Audit"),
    ("Publisher", "SetMode"),
    ("Publisher", "Object"),
    ("Publisher", "Lineage"),
    ("Publisher", "RolloutStatus"),
    ("Publisher", "RolloutResume"),
];

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token and its tokens-file line.
pub fn new_token(role: Role, name: &str) -> (String, String) {
    let token = c2wall_model::sign::hex(&c2wall_model::sign::random32());
    let role = format!("{role:?}").to_lowercase();
    let line = format!("{} {role} {name}", token_hash(&token));
    (token, line)
}

#[derive(Clone)]
pub struct Tokens {
    by_hash: Arc<HashMap<String, (String, Role)>>,
    /// Publishes per identity: a bucket of `burst`, refilled at `per_second`.
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
    pub per_second: f64,
    pub burst: f64,
    pub refused: prometheus::IntCounterVec,
}

impl Tokens {
    /// No tokens: only certificates identify callers.
    pub fn empty(refused: prometheus::IntCounterVec) -> Self {
        Tokens {
            by_hash: Arc::default(),
            buckets: Arc::default(),
            per_second: 5.0,
            burst: 20.0,
            refused,
        }
    }

    pub fn load(path: &Path, refused: prometheus::IntCounterVec) -> Result<Self, CoordError> {
        let err = |message: String| CoordError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [hash, role, name] = f.as_slice() else {
                return Err(err(format!(
                    "line {}: expected `SHA256-HEX ROLE NAME`",
                    n + 1
                )));
            };
            let role = Role::parse(role).ok_or_else(|| {
                err(format!(
                    "line {}: role `{role}` (agent, downstream, reader, publisher or admin)",
                    n + 1
                ))
            })?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("line {}: not a SHA-256 hex digest", n + 1)));
            }
            by_hash.insert(hash.to_ascii_lowercase(), (name.to_string(), role));
        }
        Ok(Tokens {
            by_hash: Arc::new(by_hash),
            buckets: Arc::default(),
            per_second: 5.0,
            burst: 20.0,
            refused,
        })
    }

    /// The caller's name and role if its certificate (when it presented
    /// one) or else its bearer token allows `method`.
    pub fn check(
        &self,
        cert: Option<&[u8]>,
        authorization: Option<&str>,
        method: &str,
    ) -> Result<(String, Role), Status> {
        let refuse = |s: Status| {
            let kind = match s.code() {
                tonic::Code::PermissionDenied => "permission_denied",
                tonic::Code::ResourceExhausted => "rate_limited",
                _ => "unauthenticated",
            };
            self.refused.with_label_values(&[kind]).inc();
            tracing::warn!(method, reason = %s.message(), "refused a call");
            Err(s)
        };
        let (name, role) = match cert {
            Some(der) => match cert_identity(der) {
                Ok(id) => id,
                Err(s) => return refuse(s),
            },
            None => {
                let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
                    return refuse(Status::unauthenticated(
                        "no client certificate and no bearer token (authorization: Bearer TOKEN)",
                    ));
                };
                match self.by_hash.get(&token_hash(token)) {
                    Some(id) => id.clone(),
                    None => return refuse(Status::unauthenticated("unknown token")),
                }
            }
        };
        let needed = needed(method);
        if !role.allows(needed) {
            return refuse(Status::permission_denied(format!(
                "{name} ({role:?}) may not call {method}, which needs {needed:?}"
            )));
        }
        if needed == Role::Publisher && !self.take(&name) {
            return refuse(Status::resource_exhausted(format!(
                "{name}: more than {} publishes per second; retry shortly",
                self.per_second
            )));
        }
        Ok((name, role))
    }

    fn take(&self, who: &str) -> bool {
        let mut b = self.buckets.lock().expect("lock");
        let now = Instant::now();
        let (level, at) = b.entry(who.to_string()).or_insert((self.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The name and role a verified client certificate names.
fn cert_identity(der: &[u8]) -> Result<(String, Role), Status> {
    match c2wall_tls::CertIdentity::from_der(der) {
        Err(e) => Err(Status::unauthenticated(format!("client certificate: {e}"))),
        Ok(None) => Err(Status::unauthenticated(format!(
            "the client certificate names no c2wall identity ({}ROLE/NAME in its SAN)",
            c2wall_tls::identity::URI_PREFIX
        ))),
        Ok(Some(id)) => match Role::parse(&id.role) {
            Some(role) => Ok((id.name, role)),
            None => Err(Status::permission_denied(format!(
                "{id}: a `{}` certificate grants no calls",
                id.role
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_agents_are_apart() {
        assert!(Role::Admin.allows(Role::Agent) && Role::Admin.allows(Role::Publisher));
        assert!(Role::Publisher.allows(Role::Reader) && !Role::Publisher.allows(Role::Admin));
        assert!(!Role::Reader.allows(Role::Publisher));
        assert!(!Role::Agent.allows(Role::Reader) && !Role::Reader.allows(Role::Agent));
        assert_eq!(needed("SetMode"), Role::Admin);
        assert_eq!(
            needed("SomethingNew"),
            Role::Admin,
            "unknown methods need admin"
        );
    }
}
