//! `[[upstream]]` in the coordinator's config: the coordinators this one
//! follows, and the local policy each upstream's entries pass through.

use std::path::PathBuf;

use c2wall_model::{sign::Trust, wire::Urls, Action};
use serde::Deserialize;

use crate::error::CoordError;

/// One `[[upstream]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Records taken from it appear under source `upstream:NAME`.
    pub name: String,
    /// Its replicas (one URL or a list), tried in turn.
    pub url: Urls,
    pub tls_ca: Option<PathBuf>,
    /// This coordinator's certificate, role `downstream`, issued by the
    /// upstream's CA (`c2wall ca issue --role downstream --name NAME`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Plaintext `http://` URLs (a closed lab only).
    #[serde(default)]
    pub insecure: bool,
    /// The upstream's version-signing public keys (hex): a version signed
    /// by none of them is refused. Required: an upstream is another party.
    #[serde(default)]
    pub trust_keys: Vec<String>,
    /// A bearer token file, for an upstream that checks tokens rather than
    /// certificates.
    pub token_file: Option<PathBuf>,
    /// This coordinator's name at the upstream [default: the certificate's].
    pub id: Option<String>,
    /// `drop` or `monitor`: every upstream entry is enforced with this
    /// action here [default: the upstream's own].
    pub action: Option<String>,
    /// With `action = "monitor"`: each new entry becomes drop after this
    /// long (monitor first), unless an admin objects.
    pub soak: Option<String>,
    /// Only entries of these categories (empty: all).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only entries of these upstream sources (empty: all).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only entries the upstream gives at least this confidence (0-100).
    #[serde(default)]
    pub min_confidence: u8,
    /// Shortest prefixes taken from this upstream [default: the guards'].
    pub min_prefix_v4: Option<u8>,
    pub min_prefix_v6: Option<u8>,
    /// Where the last verified upstream set is kept [default: beside the
    /// SQLite store, or /var/lib/c2wall with PostgreSQL].
    pub state_dir: Option<PathBuf>,
    /// Share sightings of the upstream's entries with it this often (e.g.
    /// "5m"), aggregated per entry and pseudonymised again with a key this
    /// coordinator keeps [default: never].
    pub share_sightings: Option<String>,
    /// That key [default: upstream-NAME.sightings.key in state_dir].
    pub sightings_key_file: Option<PathBuf>,
}

/// The local policy an upstream's entries pass through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub action: Option<Action>,
    /// Seconds of monitor before drop (with `action = Monitor`).
    pub soak: Option<i64>,
    pub categories: Vec<String>,
    pub sources: Vec<String>,
    pub min_confidence: u8,
    pub min_prefix_v4: Option<u8>,
    pub min_prefix_v6: Option<u8>,
}

/// An upstream, checked.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub urls: Vec<String>,
    pub tls: c2wall_tls::ClientTls,
    pub trust_keys: Vec<String>,
    pub token_file: Option<PathBuf>,
    pub id: String,
    pub policy: Policy,
    pub state_dir: Option<PathBuf>,
    /// Sightings shared upstream this often (None: never).
    pub share_sightings: Option<std::time::Duration>,
    pub sightings_key_file: Option<PathBuf>,
}

impl UpstreamConfig {
    /// Checks the table; the error names the upstream and the setting.
    pub fn check(&self) -> Result<Upstream, CoordError> {
        self.checked().map_err(CoordError::Setting)
    }

    fn checked(&self) -> Result<Upstream, String> {
        let at = format!("[[upstream]] `{}`", self.name);
        c2wall_tls::identity::check_name(&self.name)
            .map_err(|e| format!("[[upstream]] name: {e}"))?;
        let urls = self.url.clone().into_list();
        if urls.is_empty() {
            return Err(format!("{at}: url: give at least one"));
        }
        if self.trust_keys.is_empty() {
            return Err(format!(
                "{at}: trust_keys: give the upstream's version-signing public keys (hex); an \
                 upstream's versions are taken only when signed"
            ));
        }
        Trust::from_hex(self.trust_keys.iter().map(String::as_str))
            .map_err(|e| format!("{at}: trust_keys: {e}"))?;
        let action = match self.action.as_deref() {
            None => None,
            Some(a) => Some(
                a.parse::<Action>()
                    .map_err(|_| format!("{at}: action `{a}`: `drop` or `monitor`"))?,
            ),
        };
        let soak = match (&self.soak, action) {
            (None, _) => None,
            (Some(s), Some(Action::Monitor)) => Some(
                humantime::parse_duration(s)
                    .map_err(|e| format!("{at}: soak `{s}`: {e}"))?
                    .as_secs() as i64,
            ),
            (Some(_), _) => {
                return Err(format!(
                    "{at}: soak applies to action = \"monitor\" (monitor first, then drop)"
                ))
            }
        };
        let share_sightings = match &self.share_sightings {
            None => None,
            Some(s) => {
                let d = humantime::parse_duration(s)
                    .map_err(|e| format!("{at}: share_sightings `{s}`: {e}"))?;
                if d < std::time::Duration::from_secs(1) {
                    return Err(format!("{at}: share_sightings: at least 1s"));
                }
                Some(d)
            }
        };
        if self.min_confidence > 100 {
            return Err(format!("{at}: min_confidence: 0-100"));
        }
        if self.min_prefix_v4.is_some_and(|l| l > 32) || self.min_prefix_v6.is_some_and(|l| l > 128)
        {
            return Err(format!(
                "{at}: min_prefix_v4 is at most 32, min_prefix_v6 at most 128"
            ));
        }
        let tls = c2wall_tls::ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.insecure,
        };
        for u in &urls {
            tls.endpoint(u)
                .map_err(|e| format!("{at}: url `{u}`: {e}"))?;
        }
        let cert_name = match &self.tls_cert {
            None => None,
            Some(p) => c2wall_tls::files::identity_of(p)
                .map_err(|e| format!("{at}: tls_cert: {e}"))?
                .map(|i| i.name),
        };
        let id = match (&self.id, cert_name) {
            (Some(id), Some(n)) if *id != n => {
                return Err(format!(
                    "{at}: id `{id}`, but the certificate names `{n}`, which is what the \
                     upstream knows this coordinator as: drop id or use `{n}`"
                ))
            }
            (Some(id), _) => id.clone(),
            (None, Some(n)) => n,
            (None, None) => {
                return Err(format!(
                    "{at}: id: give this coordinator's name at the upstream (or a tls_cert \
                     that names it)"
                ))
            }
        };
        Ok(Upstream {
            name: self.name.clone(),
            urls,
            tls,
            trust_keys: self.trust_keys.clone(),
            token_file: self.token_file.clone(),
            id,
            policy: Policy {
                action,
                soak,
                categories: self.categories.clone(),
                sources: self.sources.clone(),
                min_confidence: self.min_confidence,
                min_prefix_v4: self.min_prefix_v4,
                min_prefix_v6: self.min_prefix_v6,
            },
            state_dir: self.state_dir.clone(),
            share_sightings,
            sightings_key_file: self.sightings_key_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> UpstreamConfig {
        toml::from_str(&format!(
            "name = \"jp-centre\"\nurl = \"http://127.0.0.1:1\"\ninsecure = true\nid = \"isp-a\"\n{extra}"
        ))
        .unwrap()
    }
    const KEY: &str =
        "trust_keys = [\"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"]\n";

    #[test]
    fn the_isp_example_in_deploy_parses() {
        #[derive(Deserialize)]
        struct F {
            upstream: Vec<UpstreamConfig>,
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/coordinator-isp.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        let f: F = v.try_into().unwrap();
        let u = &f.upstream[0];
        assert_eq!(
            (u.name.as_str(), u.action.as_deref()),
            ("jp-centre", Some("monitor"))
        );
        assert_eq!(u.soak.as_deref(), Some("24h"));
    }

    #[test]
    fn settings_are_checked_naming_the_upstream_and_the_setting() {
        let ok = parse(&format!("{KEY}action = \"monitor\"\nsoak = \"2h\"\n"))
            .check()
            .unwrap();
        assert_eq!(
            (ok.policy.action, ok.policy.soak, ok.id.as_str()),
            (Some(Action::Monitor), Some(7200), "isp-a")
        );
        for (extra, needle) in [
            ("", "trust_keys"),
            ("trust_keys = [\"zz\"]\n", "trust_keys"),
            (&format!("{KEY}action = \"block\"\n"), "action `block`"),
            (
                &format!("{KEY}soak = \"1h\"\n"),
                "soak applies to action = \"monitor\"",
            ),
            (&format!("{KEY}min_confidence = 101\n"), "min_confidence"),
            (&format!("{KEY}min_prefix_v4 = 33\n"), "min_prefix_v4"),
        ] {
            let e = parse(extra).check().unwrap_err().to_string();
            assert!(
                e.contains("`jp-centre`") && e.contains(needle),
                "{extra}: {e}"
            );
        }
        let plain: UpstreamConfig = toml::from_str(&format!(
            "name = \"c\"\nurl = \"http://127.0.0.1:1\"\n{KEY}id = \"x\"\n"
        ))
        .unwrap();
        let e = plain.check().unwrap_err().to_string();
        assert!(e.contains("plaintext"), "{e}");
    }
}
