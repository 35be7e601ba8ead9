//! One `[[feed]]` table of the coordinator's config file.

use std::path::PathBuf;

use c2wall_feeds::{
    policy::{Guard, Policy},
    Format,
};
use c2wall_model::Action;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Also the source name of its records.
    pub name: String,
    /// Where to pull from: exactly one of `url`, `path` and `taxii` (a TAXII
    /// 2.1 collection's objects URL, polled with `added_after`; format stix).
    pub url: Option<String>,
    pub path: Option<PathBuf>,
    pub taxii: Option<String>,
    /// One of `c2wall feed formats`.
    pub format: String,
    /// Seconds between pulls; at least the format's minimum.
    pub interval: Option<u64>,
    /// `monitor` (default) or `drop`.
    #[serde(default)]
    pub action: Option<String>,
    /// Category for entries the feed does not categorise.
    #[serde(default)]
    pub category: String,
    /// Seconds an entry stays valid after the last pull that listed it
    /// (0 = until the feed drops it).
    #[serde(default)]
    pub ttl: u64,
    pub min_prefix_v4: Option<u8>,
    pub min_prefix_v6: Option<u8>,
    /// Refuse a pull with more entries (0 = no limit).
    #[serde(default)]
    pub max_entries: usize,
    /// Leave out entries the feed rates below this (0-100).
    #[serde(default)]
    pub min_confidence: u8,
    /// Keep the ports a feed gives (default true); false blocks the address.
    pub ports: Option<bool>,
    /// Refuse a pull with a larger share of rejected lines (default 0.1).
    pub max_reject_ratio: Option<f64>,
    /// Refuse a pull that keeps less than this share of the previous entries
    /// (default 0.5).
    pub min_keep_ratio: Option<f64>,
    /// HTTP timeout in seconds (default 60).
    pub timeout: Option<u64>,
    /// Largest download accepted, bytes (default 256 MiB).
    pub max_bytes: Option<u64>,
    /// HTTP basic authentication: the user, with its password read from
    /// `password_file` at every pull (never stored or shown).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A bearer token read from this file at every pull.
    pub token_file: Option<PathBuf>,
    /// A custom header (e.g. `X-API-Key`) whose value is read from
    /// `header_file` at every pull.
    pub header: Option<String>,
    pub header_file: Option<PathBuf>,
    /// Objects asked per TAXII page (`limit`, sent on every request: some
    /// servers fail a `next` request without one) [default: 500].
    pub page_size: Option<u32>,
}

/// How a feed authenticates; secrets stay in their files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password_file: PathBuf,
    },
    Bearer {
        token_file: PathBuf,
    },
    Header {
        name: String,
        value_file: PathBuf,
    },
}

/// `url` as it may be shown or logged: without `user:password@`.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// A feed ready to run: its config checked and turned into parser settings.
#[derive(Debug, Clone)]
pub struct Feed {
    pub name: String,
    pub location: Location,
    pub format: Format,
    pub interval: u64,
    pub policy: Policy,
    pub guard: Guard,
    pub ttl: Option<i64>,
    pub timeout: u64,
    pub max_bytes: u64,
    pub auth: Auth,
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url(String),
    Path(PathBuf),
    /// A TAXII 2.1 collection's `.../objects/` endpoint.
    Taxii(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Shown in `c2wall feed list`, errors, version reasons and logs:
            // credentials in the URL never are.
            Location::Url(u) | Location::Taxii(u) => f.write_str(&redact(u)),
            Location::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FeedConfig {
    /// Checks the table; errors name the feed and the key.
    pub fn check(&self) -> Result<Feed, String> {
        let n = &self.name;
        if n.is_empty() || n.contains(char::is_whitespace) || n.starts_with("operator:") {
            return Err(format!(
                "feed name `{n}`: must be non-empty, without spaces, and not start with `operator:`"
            ));
        }
        let format: Format = self.format.parse().map_err(|e| format!("feed {n}: {e}"))?;
        let http = |u: &String| u.starts_with("http://") || u.starts_with("https://");
        let location = match (&self.url, &self.path, &self.taxii) {
            (Some(u), None, None) if http(u) => Location::Url(u.clone()),
            (None, None, Some(u)) if http(u) && format == Format::Stix => {
                Location::Taxii(u.clone())
            }
            (None, None, Some(_)) if format != Format::Stix => {
                return Err(format!("feed {n}: a taxii feed has format `stix`"))
            }
            (Some(u), None, None) | (None, None, Some(u)) => {
                return Err(format!("feed {n}: `{u}` is not an http(s) URL"))
            }
            (None, Some(p), None) => Location::Path(p.clone()),
            _ => {
                return Err(format!(
                    "feed {n}: give exactly one of `url`, `path` and `taxii`"
                ))
            }
        };
        let auth = self.auth(n, &location)?;
        let page_size = self.page_size.unwrap_or(500);
        if page_size == 0 {
            return Err(format!("feed {n}: page_size must be at least 1"));
        }
        let min = format.min_interval().as_secs();
        let interval = self.interval.unwrap_or(min.max(3600));
        if interval < min {
            return Err(format!(
                "feed {n}: interval {interval} s is below the {min} s the {format} source allows"
            ));
        }
        let action = match self.action.as_deref() {
            None | Some("monitor") => Action::Monitor,
            Some("drop") => Action::Drop,
            Some(a) => return Err(format!("feed {n}: action `{a}` (monitor or drop)")),
        };
        let ratio = |v: Option<f64>, d: f64, key: &str| match v.unwrap_or(d) {
            r if (0.0..=1.0).contains(&r) => Ok(r),
            r => Err(format!("feed {n}: {key} {r} is not between 0 and 1")),
        };
        if self.min_confidence > 100 {
            return Err(format!("feed {n}: min_confidence is 0-100"));
        }
        let d = Policy::default();
        let (v4, v6) = (
            self.min_prefix_v4.unwrap_or(d.min_len_v4),
            self.min_prefix_v6.unwrap_or(d.min_len_v6),
        );
        if v4 > 32 || v6 > 128 {
            return Err(format!(
                "feed {n}: min_prefix_v4 is 0-32, min_prefix_v6 0-128"
            ));
        }
        Ok(Feed {
            name: n.clone(),
            location,
            format,
            interval,
            policy: Policy {
                action,
                category: self.category.clone(),
                min_len_v4: v4,
                min_len_v6: v6,
                min_confidence: self.min_confidence,
                ports: self.ports.unwrap_or(true),
                ..d
            },
            guard: Guard {
                max_reject_ratio: ratio(self.max_reject_ratio, 0.1, "max_reject_ratio")?,
                min_keep_ratio: ratio(self.min_keep_ratio, 0.5, "min_keep_ratio")?,
                max_entries: self.max_entries,
            },
            ttl: (self.ttl > 0).then_some(self.ttl as i64),
            timeout: self.timeout.unwrap_or(60),
            max_bytes: self.max_bytes.unwrap_or(256 << 20),
            auth,
            page_size,
        })
    }

    fn auth(&self, n: &str, location: &Location) -> Result<Auth, String> {
        let exists = |p: &PathBuf, key: &str| {
            if p.is_file() {
                Ok(p.clone())
            } else {
                Err(format!(
                    "feed {n}: {key} {} is not a readable file",
                    p.display()
                ))
            }
        };
        let auth = match (
            &self.username,
            &self.password_file,
            &self.token_file,
            &self.header,
            &self.header_file,
        ) {
            (None, None, None, None, None) => Auth::None,
            (Some(u), Some(p), None, None, None) => Auth::Basic {
                username: u.clone(),
                password_file: exists(p, "password_file")?,
            },
            (None, None, Some(t), None, None) => Auth::Bearer {
                token_file: exists(t, "token_file")?,
            },
            (None, None, None, Some(h), Some(f)) => {
                reqwest::header::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("feed {n}: header `{h}` is not a header name"))?;
                Auth::Header {
                    name: h.clone(),
                    value_file: exists(f, "header_file")?,
                }
            }
            _ => {
                return Err(format!(
                    "feed {n}: give one way to authenticate: username with password_file, \
                     token_file, or header with header_file"
                ))
            }
        };
        if auth != Auth::None && matches!(location, Location::Path(_)) {
            return Err(format!("feed {n}: credentials are for url and taxii feeds"));
        }
        if let Location::Url(u) | Location::Taxii(u) = location {
            if redact(u) != *u {
                tracing::warn!(
                    feed = n,
                    "the URL carries credentials: they are never shown, \
                    but prefer username/password_file, token_file or header_file"
                );
            }
        }
        Ok(auth)
    }
}
