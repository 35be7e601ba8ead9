//! Who may call what: bearer tokens mapped to an identity and a role, checked
//! on every RPC before it reaches a handler, and a per-identity rate limit on
//! the calls that change the list.
//!
//! Roles: `agent` (subscribe, report status and sightings), `reader` (list,
//! get, explain, history, agents, feeds, sightings, protected, pending,
//! audit), `publisher` (a reader that may also publish and import), `admin`
//! (everything: rollback, guards, confirmations, kill switch, objections).
//! A missing or unknown token is UNAUTHENTICATED, a known one without the
//! role PERMISSION_DENIED; both are logged and counted. The caller's name in
//! the audit log is the token's identity, not a header it could forge.
//!
//! The tokens file holds `SHA256-HEX ROLE NAME` lines (`c2wall-coordinator
//! token --role R --name N` makes one); tokens themselves are never stored.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use sha2::{Digest, Sha256};
use tonic::Status;

use crate::error::CoordError;
use crate::service::ACTOR_HEADER;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Agent,
    Reader,
    Publisher,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "agent" => Role::Agent,
            "reader" => Role::Reader,
            "publisher" => Role::Publisher,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
    fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Agent, r) => r == Role::Agent,
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
        | "Pending" | "Audit" => Role::Reader,
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
                    "line {}: role `{role}` (agent, reader, publisher or admin)",
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

    /// The caller's identity if `authorization` allows `method`.
    pub fn check(&self, authorization: Option<&str>, method: &str) -> Result<String, Status> {
        let refuse = |kind: &str, s: Status| {
            self.refused.with_label_values(&[kind]).inc();
            tracing::warn!(method, reason = %s.message(), "refused a call");
            Err(s)
        };
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return refuse(
                "unauthenticated",
                Status::unauthenticated("no bearer token (authorization: Bearer TOKEN)"),
            );
        };
        let Some((name, role)) = self.by_hash.get(&token_hash(token)) else {
            return refuse("unauthenticated", Status::unauthenticated("unknown token"));
        };
        let needed = needed(method);
        if !role.allows(needed) {
            return refuse(
                "permission_denied",
                Status::permission_denied(format!(
                    "{name} ({role:?}) may not call {method}, which needs {needed:?}"
                )),
            );
        }
        if needed == Role::Publisher && !self.take(name) {
            return refuse(
                "rate_limited",
                Status::resource_exhausted(format!(
                    "{name}: more than {} publishes per second; retry shortly",
                    self.per_second
                )),
            );
        }
        Ok(name.clone())
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

/// A tower layer checking every call against the tokens; the identity it
/// finds replaces any actor header the caller sent.
#[derive(Clone)]
pub struct AuthLayer(pub Option<Tokens>);

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authed<S>;
    fn layer(&self, inner: S) -> Authed<S> {
        Authed {
            inner,
            tokens: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authed<S> {
    inner: S,
    tokens: Option<Tokens>,
}

impl<S, B> tower_service::Service<http::Request<B>> for Authed<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(tokens) = &self.tokens {
            let method = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match tokens.check(auth, &method) {
                Ok(name) => {
                    if let Ok(v) = name.parse() {
                        req.headers_mut().insert(ACTOR_HEADER, v);
                    }
                }
                Err(status) => {
                    let resp = status.into_http();
                    return Box::pin(async move { Ok(resp) });
                }
            }
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
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
