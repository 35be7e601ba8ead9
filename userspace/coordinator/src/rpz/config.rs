//! `[rpz]` in the coordinator's config, checked into the settings the zone
//! and the server use. Every refusal names the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use c2wall_model::{DomainName, Prefix};
use serde::Deserialize;

use super::tsig::Key;
use crate::error::CoordError;

/// `[rpz]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpzConfig {
    /// Address for DNS over TCP (transfers) and UDP (SOA, NOTIFY replies).
    pub listen: SocketAddr,
    /// The zone's name, e.g. `c2wall.rpz.`.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// BIND-format key file (`c2wall-coordinator tsig-keygen` writes one).
    /// Transfers must be signed with it unless the client's address is in
    /// `allow_transfer`.
    pub tsig_key_file: Option<PathBuf>,
    /// Secondaries allowed by address alone (resolvers that cannot sign).
    #[serde(default)]
    pub allow_transfer: Vec<String>,
    /// Secondaries told of each new version (UDP NOTIFY).
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// `nxdomain` (the default) or `redirect:NAME` (a walled garden that
    /// tells the subscriber their device is infected).
    #[serde(default = "default_action")]
    pub action: String,
    /// Per-source actions, overriding `action`: `{ "feed-x" = "nxdomain" }`.
    #[serde(default)]
    pub source_actions: BTreeMap<String, String>,
    /// TTL of the policy records (how long clients may cache a rewrite).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Also export whole-prefix entries towards a C&C as `rpz-ip` triggers
    /// (a resolver then refuses any name whose answer holds such an
    /// address). Off by default: an address shared by many sites (hosting,
    /// CDNs) would take all their names with it.
    #[serde(default)]
    pub ip_triggers: bool,
}

fn default_zone() -> String {
    "c2wall.rpz.".into()
}
fn default_action() -> String {
    "nxdomain".into()
}
fn default_ttl() -> u32 {
    60
}

/// What a resolver answers for a listed name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// NXDOMAIN (RPZ `CNAME .`).
    Nxdomain,
    /// The walled garden's address (RPZ `CNAME name.`, answered by the
    /// resolver with that name's records).
    Redirect(DomainName),
}

impl std::str::FromStr for Policy {
    type Err = CoordError;
    fn from_str(s: &str) -> Result<Self, CoordError> {
        match s.trim() {
            "nxdomain" => Ok(Policy::Nxdomain),
            other => match other.strip_prefix("redirect:") {
                Some(name) => name
                    .parse()
                    .map(Policy::Redirect)
                    .map_err(|e| CoordError::Setting(e.to_string())),
                None => Err(CoordError::Setting(format!(
                    "`{other}` is not an action (nxdomain or redirect:NAME)"
                ))),
            },
        }
    }
}

/// `[rpz]` checked.
#[derive(Debug, Clone)]
pub struct Rpz {
    pub listen: SocketAddr,
    /// Lower case, no final dot.
    pub zone: DomainName,
    pub key: Option<Key>,
    pub allow_transfer: Vec<Prefix>,
    pub notify: Vec<SocketAddr>,
    pub action: Policy,
    pub source_actions: BTreeMap<String, Policy>,
    pub ttl: u32,
    pub ip_triggers: bool,
}

impl RpzConfig {
    pub fn check(&self) -> Result<Rpz, CoordError> {
        let bad = |key: &str, why: String| CoordError::Setting(format!("[rpz] {key}: {why}"));
        let zone: DomainName = self.zone.parse().map_err(|e| bad("zone", format!("{e}")))?;
        let key = self.tsig_key_file.as_deref().map(Key::load).transpose()?;
        let allow_transfer = self
            .allow_transfer
            .iter()
            .map(|p| p.parse().map_err(|e| bad("allow_transfer", format!("{e}"))))
            .collect::<Result<_, _>>()?;
        if key.is_none() && self.allow_transfer.is_empty() {
            return Err(bad(
                "tsig_key_file",
                "neither a key nor allow_transfer is set: no secondary could transfer the \
                 zone (create a key with `c2wall-coordinator tsig-keygen`)"
                    .into(),
            ));
        }
        let action = self
            .action
            .parse()
            .map_err(|e: CoordError| bad("action", e.to_string()))?;
        let source_actions = self
            .source_actions
            .iter()
            .map(|(s, a)| {
                a.parse()
                    .map(|p| (s.clone(), p))
                    .map_err(|e: CoordError| bad(&format!("source_actions.\"{s}\""), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if self.ttl == 0 || self.ttl > 86_400 {
            return Err(bad("ttl", format!("{} is not within 1-86400", self.ttl)));
        }
        Ok(Rpz {
            listen: self.listen,
            zone,
            key,
            allow_transfer,
            notify: self.notify.clone(),
            action,
            source_actions,
            ttl: self.ttl,
            ip_triggers: self.ip_triggers,
        })
    }
}

impl Rpz {
    /// The action for a record from `source`.
    pub fn policy(&self, source: &str) -> &Policy {
        self.source_actions.get(source).unwrap_or(&self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<Rpz, CoordError> {
        let text =
            format!("listen = \"127.0.0.1:5353\"\nallow_transfer = [\"127.0.0.1/32\"]\n{extra}");
        toml::from_str::<RpzConfig>(&text).unwrap().check()
    }

    #[test]
    fn defaults_and_refusals_name_the_key() {
        let r = cfg("").unwrap();
        assert_eq!(r.zone.as_str(), "c2wall.rpz");
        assert_eq!(r.action, Policy::Nxdomain);
        let r = cfg("action = \"redirect:Garden.ISP.example.\"").unwrap();
        assert_eq!(
            r.action,
            Policy::Redirect("garden.isp.example".parse().unwrap())
        );
        let e = cfg("action = \"drop\"").unwrap_err().to_string();
        assert!(e.starts_with("[rpz] action: `drop`"), "{e}");
        let e = cfg("source_actions = { feed = \"redirect:a..b\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("source_actions.\"feed\""), "{e}");
        let e = cfg("ttl = 0").unwrap_err().to_string();
        assert!(e.contains("[rpz] ttl"), "{e}");
        let e = toml::from_str::<RpzConfig>("listen = \"127.0.0.1:53\"")
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a key nor allow_transfer"), "{e}");
    }
}
