//! Guards against over-blocking: what no publish or import may list.
//!
//! - Default routes and the special-purpose ranges whose blocking breaks the
//!   network (loopback, link-local, multicast, ...): refused, always.
//! - Prefix-length floors: globally /16 (IPv4) and /32 (IPv6) unless a source
//!   is allowed shorter.
//! - The protected allowlist (the ISP's and the centre's infrastructure,
//!   public resolvers, anything an admin adds): an entry overlapping a
//!   protected prefix (inside it or containing it) is refused, naming it.
//! - Domains: never a public suffix (the Public Suffix List, compiled in),
//!   a wildcard only at or below the depth its source allows, and never at,
//!   below or above a protected domain (the big platforms by default, plus
//!   the ISP's own names from config or `c2wall protect add --domain`).

use std::collections::BTreeMap;

use c2wall_model::{Domain, DomainName, Family, Prefix, Target};
use serde::Deserialize;

pub use c2wall_model::special::SPECIAL;

/// Public resolvers protected in a new store (an admin can remove them).
pub const DEFAULT_PROTECTED: &[(&str, &str)] = &[
    ("8.8.8.8/32", "public resolver (Google)"),
    ("8.8.4.4/32", "public resolver (Google)"),
    ("1.1.1.1/32", "public resolver (Cloudflare)"),
    ("1.0.0.1/32", "public resolver (Cloudflare)"),
    ("9.9.9.9/32", "public resolver (Quad9)"),
    ("149.112.112.112/32", "public resolver (Quad9)"),
    ("2001:4860:4860::8888/128", "public resolver (Google)"),
    ("2001:4860:4860::8844/128", "public resolver (Google)"),
    ("2606:4700:4700::1111/128", "public resolver (Cloudflare)"),
    ("2606:4700:4700::1001/128", "public resolver (Cloudflare)"),
    ("2620:fe::fe/128", "public resolver (Quad9)"),
];

/// Names protected by default (`[guards] protected_domains` replaces the
/// list): blocking them, or anything below them, would cut customers off
/// services they use every day. A C&C hosted under one of them is reported
/// to its operator, not blocked by name.
pub const DEFAULT_PROTECTED_DOMAINS: &[&str] = &[
    "google.com",
    "googleapis.com",
    "gstatic.com",
    "youtube.com",
    "apple.com",
    "icloud.com",
    "microsoft.com",
    "windowsupdate.com",
    "live.com",
    "office.com",
    "amazon.com",
    "amazonaws.com",
    "cloudflare.com",
    "akamaiedge.net",
    "akamai.net",
    "facebook.com",
    "instagram.com",
    "whatsapp.net",
    "github.com",
    "line.me",
    "yahoo.co.jp",
    "rakuten.co.jp",
    "ntp.org",
];

/// `[guards]` in the coordinator's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Shortest prefixes accepted, unless the source has its own floor.
    pub min_prefix_v4: u8,
    pub min_prefix_v6: u8,
    /// Per-source floors, e.g. `[guards.sources.spamhaus-drop] min_prefix_v4 = 8`.
    pub sources: BTreeMap<String, SourceFloor>,
    /// A change adding or removing more entries than this AND more than
    /// `breaker_share` of the list is held for an admin's confirmation.
    pub breaker_entries: usize,
    pub breaker_share: f64,
    /// Names no domain entry may be at, below or above (the ISP adds its
    /// own). Protected by config: `c2wall protect` does not remove them.
    pub protected_domains: Vec<String>,
    /// Labels a wildcard entry's name needs below its public suffix: 1
    /// allows `*.evil.example` (a registrable domain and everything in it),
    /// 2 only `*.cc.evil.example`. A source may have its own.
    pub min_wildcard_labels: u8,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFloor {
    pub min_prefix_v4: Option<u8>,
    pub min_prefix_v6: Option<u8>,
    pub min_wildcard_labels: Option<u8>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            min_prefix_v4: 16,
            min_prefix_v6: 32,
            sources: BTreeMap::new(),
            breaker_entries: 1000,
            breaker_share: 0.1,
            protected_domains: DEFAULT_PROTECTED_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
            min_wildcard_labels: 1,
        }
    }
}

/// The guards in force: config plus the protected allowlist from the store
/// (prefixes and domains).
#[derive(Debug, Clone, Default)]
pub struct Guards {
    pub config: GuardConfig,
    special: Vec<(Prefix, &'static str)>,
    pub protected: BTreeMap<Target, String>,
    /// `config.protected_domains`, parsed (a name that does not parse is
    /// refused when the config is read).
    config_domains: Vec<DomainName>,
}

impl Guards {
    pub fn new(config: GuardConfig, protected: BTreeMap<Target, String>) -> Self {
        let config_domains = config
            .protected_domains
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        Guards {
            config,
            special: SPECIAL
                .iter()
                .map(|(p, why)| (p.parse().expect("literal"), *why))
                .collect(),
            protected,
            config_domains,
        }
    }

    /// The names `[guards] protected_domains` protects (not in the store).
    pub fn config_domains(&self) -> &[DomainName] {
        &self.config_domains
    }

    /// The config's protected names that do not parse, with why.
    pub fn check_config(config: &GuardConfig) -> Result<(), crate::CoordError> {
        for d in &config.protected_domains {
            d.parse::<DomainName>().map_err(|e| {
                crate::CoordError::Setting(format!("[guards] protected_domains: {e}"))
            })?;
        }
        Ok(())
    }

    /// Why `t` from `source` must not be listed, if it must not.
    pub fn refuse(&self, t: &Target, source: &str) -> Option<String> {
        match t {
            Target::Prefix(p) => self.refuse_prefix(p, source),
            Target::Domain(d) => self.refuse_domain(d, source),
        }
    }

    fn refuse_domain(&self, d: &Domain, source: &str) -> Option<String> {
        let name = d.name.as_str();
        let suffix = psl::suffix(name.as_bytes())
            .and_then(|s| std::str::from_utf8(s.as_bytes()).ok().map(str::to_string))
            .unwrap_or_default();
        let suffix_labels = if suffix.is_empty() {
            0
        } else {
            suffix.split('.').count()
        };
        let below = d.name.label_count().saturating_sub(suffix_labels);
        if below == 0 {
            return Some(format!(
                "`{d}` is a public suffix (`{suffix}` on the Public Suffix List): \
                 it would block every domain registered under it"
            ));
        }
        if d.subtree {
            let floor = self
                .config
                .sources
                .get(source)
                .and_then(|s| s.min_wildcard_labels)
                .unwrap_or(self.config.min_wildcard_labels)
                .max(1) as usize;
            if below < floor {
                return Some(format!(
                    "`{d}` is a wildcard {below} label(s) below the public suffix `{suffix}`; \
                     source `{source}` may list wildcards at least {floor} below \
                     ([guards.sources.\"{source}\"] min_wildcard_labels)"
                ));
            }
        }
        if let Some(p) = self.config_domains.iter().find(|p| d.touches_subtree(p)) {
            return Some(format!(
                "`{d}` overlaps the protected domain {p} (the coordinator's [guards] \
                 protected_domains)"
            ));
        }
        let stored = self
            .protected
            .iter()
            .filter_map(|(t, why)| Some((t.domain()?, why)));
        for (p, why) in stored {
            if d.touches_subtree(&p.name) {
                return Some(format!(
                    "`{d}` overlaps the protected domain {} ({why})",
                    p.name
                ));
            }
        }
        None
    }

    fn floor(&self, source: &str, f: Family) -> u8 {
        let s = self.config.sources.get(source);
        match f {
            Family::V4 => s
                .and_then(|s| s.min_prefix_v4)
                .unwrap_or(self.config.min_prefix_v4),
            Family::V6 => s
                .and_then(|s| s.min_prefix_v6)
                .unwrap_or(self.config.min_prefix_v6),
        }
    }

    fn refuse_prefix(&self, p: &Prefix, source: &str) -> Option<String> {
        if p.len() == 0 {
            return Some(format!(
                "`{p}` is a default route: it would block everything"
            ));
        }
        let overlaps = |q: &Prefix| q.contains(p) || p.contains(q);
        if let Some((q, why)) = self.special.iter().find(|(q, _)| overlaps(q)) {
            return Some(format!(
                "`{p}` overlaps {q} ({why}), which must never be blocked"
            ));
        }
        let floor = self.floor(source, p.family());
        if p.len() < floor {
            let key = match p.family() {
                Family::V4 => "min_prefix_v4",
                Family::V6 => "min_prefix_v6",
            };
            return Some(format!(
                "`{p}` is shorter than the /{floor} floor for source `{source}` \
                 (an admin can allow it with [guards.sources.\"{source}\"] {key})"
            ));
        }
        // Protected prefixes that contain p are at or before it in order;
        // those inside p lie between p and its last host.
        let inside = self
            .protected
            .range(Target::Prefix(*p)..=Target::Prefix(p.last_host()))
            .next()
            .and_then(|(q, why)| Some((q.prefix()?, why)));
        let around = (0..=p.len())
            .map(|l| p.truncate(l))
            .find_map(|q| self.protected.get(&Target::Prefix(q)).map(|why| (q, why)));
        if let Some((q, why)) = around.or(inside) {
            return Some(format!("`{p}` overlaps the protected prefix {q} ({why})"));
        }
        None
    }

    /// Whether a change of `added + removed` entries to a list of `size`
    /// must wait for an admin.
    pub fn breaks(&self, changed: usize, size: usize) -> bool {
        changed > self.config.breaker_entries
            && changed as f64 > self.config.breaker_share * size.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Guards {
        let mut cfg = GuardConfig::default();
        cfg.sources.insert(
            "spamhaus-drop".into(),
            SourceFloor {
                min_prefix_v4: Some(8),
                min_prefix_v6: None,
                min_wildcard_labels: None,
            },
        );
        let protected = DEFAULT_PROTECTED
            .iter()
            .chain([("203.0.113.0/28", "ISP core routers")].iter())
            .map(|(p, w)| (p.parse().unwrap(), w.to_string()))
            .collect();
        Guards::new(cfg, protected)
    }

    fn refuse(p: &str, source: &str) -> Option<String> {
        g().refuse(&p.parse().unwrap(), source)
    }

    #[test]
    fn defaults_special_ranges_floors_and_protected_prefixes() {
        assert!(refuse("0.0.0.0/0", "x").unwrap().contains("default route"));
        assert!(refuse("::/0", "x").unwrap().contains("default route"));
        assert!(refuse("127.0.0.1", "x")
            .unwrap()
            .contains("127.0.0.0/8 (loopback)"));
        assert!(refuse("224.0.0.0/3", "spamhaus-drop")
            .unwrap()
            .contains("224.0.0.0/4"));
        assert!(refuse("fe80::1", "x").unwrap().contains("link-local"));
        let e = refuse("10.0.0.0/12", "operator:alice").unwrap();
        assert!(e.contains("/16 floor for source `operator:alice`"), "{e}");
        assert_eq!(
            refuse("10.0.0.0/12", "spamhaus-drop"),
            None,
            "allowed shorter"
        );
        assert!(refuse("2001:d00::/24", "spamhaus-drop")
            .unwrap()
            .contains("/32 floor"));
        // Protected: inside, around, exact.
        let e = refuse("8.8.8.8", "x").unwrap();
        assert!(
            e.contains("protected prefix 8.8.8.8/32 (public resolver (Google))"),
            "{e}"
        );
        let e = refuse("8.8.0.0/16", "x").unwrap();
        assert!(e.contains("8.8.4.4/32") || e.contains("8.8.8.8/32"), "{e}");
        assert!(refuse("203.0.113.4", "x")
            .unwrap()
            .contains("203.0.113.0/28"));
        assert!(refuse("203.0.113.0/24", "x")
            .unwrap()
            .contains("203.0.113.0/28"));
        assert_eq!(refuse("203.0.113.66", "x"), None);
        assert_eq!(refuse("8.8.8.9", "x"), None);
        assert!(refuse("2606:4700:4700::/48", "x")
            .unwrap()
            .contains("Cloudflare"));
        // Breaker: both the count and the share must be exceeded.
        let g = g();
        assert!(!g.breaks(1000, 100));
        assert!(g.breaks(1001, 2000));
        assert!(!g.breaks(1001, 100_000));
    }
}
