//! DNS names as entry keys: one name (`evil.example`) or a name and every
//! name below it (`*.evil.example`), normalised so that two spellings of one
//! name are one entry: lower case, no trailing dot, IDNA labels as A-labels.

use std::{fmt, str::FromStr, sync::Arc};

use crate::ModelError;

/// Longest name in presentation form without the final dot (255 bytes on
/// the wire, RFC 1035 2.3.4).
pub const MAX_NAME_BYTES: usize = 253;
/// Longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_BYTES: usize = 63;

/// A normalised DNS name: A-label form, lower case, no trailing dot, at
/// least one label. Cheap to clone (shared). One word: behind a thin
/// pointer, a name makes an entry's target no larger than a prefix does
/// (an entry takes 32 bytes instead of 40, and lists hold a million).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Arc<String>);

/// A domain entry's key: the name alone, or the name and its subtree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain {
    pub name: DomainName,
    /// `*.name`: the name and every name below it.
    pub subtree: bool,
}

impl DomainName {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }
    /// `self` is `other` or below it.
    pub fn is_at_or_below(&self, other: &DomainName) -> bool {
        let (s, o) = (self.as_str(), other.as_str());
        s == o
            || (s.len() > o.len() && s.ends_with(o) && s.as_bytes()[s.len() - o.len() - 1] == b'.')
    }
    /// The parent name (`evil.example` for `www.evil.example`); `None` for a
    /// single label.
    pub fn parent(&self) -> Option<DomainName> {
        self.0
            .split_once('.')
            .map(|(_, p)| DomainName(Arc::new(p.to_string())))
    }
}

impl Domain {
    /// The entry covers `name`: equal, or below it for a subtree entry.
    pub fn covers(&self, name: &DomainName) -> bool {
        if self.subtree {
            name.is_at_or_below(&self.name)
        } else {
            *name == self.name
        }
    }
    /// Whether the entry reaches into the subtree of `protected`: it is at
    /// or below it, or a wildcard above it.
    pub fn touches_subtree(&self, protected: &DomainName) -> bool {
        self.name.is_at_or_below(protected)
            || (self.subtree && protected.is_at_or_below(&self.name))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subtree {
            f.write_str("*.")?;
        }
        f.write_str(self.name.as_str())
    }
}

fn bad(input: &str, label: &str, why: &str) -> ModelError {
    ModelError::BadDomain {
        input: crate::limits::quote(input, 300),
        label: crate::limits::quote(label, 80),
        why: why.to_string(),
    }
}

impl FromStr for DomainName {
    type Err = ModelError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(bad(input, "", "the name is empty"));
        }
        let mut out = String::with_capacity(s.len());
        for label in s.split('.') {
            let ascii = if label.is_ascii() {
                label.to_ascii_lowercase()
            } else {
                // UTS 46 mapping, then Punycode: `Bücher` -> `xn--bcher-kva`.
                idna::domain_to_ascii_strict(label).map_err(|_| {
                    bad(
                        input,
                        label,
                        "is not a valid internationalised (IDNA) label",
                    )
                })?
            };
            check_label(input, label, &ascii)?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&ascii);
        }
        if out.len() > MAX_NAME_BYTES {
            return Err(bad(
                input,
                "",
                &format!("the name is {} bytes, at most {MAX_NAME_BYTES}", out.len()),
            ));
        }
        let last = out.rsplit('.').next().unwrap_or_default();
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                input,
                last,
                "a top-level label is never all digits (an address is not a name)",
            ));
        }
        Ok(DomainName(Arc::new(out)))
    }
}

fn check_label(input: &str, original: &str, label: &str) -> Result<(), ModelError> {
    if label.is_empty() {
        return Err(bad(input, original, "is empty (two dots in a row?)"));
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(bad(
            input,
            original,
            &format!("is {} bytes, at most {MAX_LABEL_BYTES}", label.len()),
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(bad(
            input,
            original,
            &format!("holds `{c}` (letters, digits, `-` and `_` only)"),
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(bad(input, original, "starts or ends with `-`"));
    }
    Ok(())
}

impl FromStr for Domain {
    type Err = ModelError;
    /// `evil.example` or `*.evil.example`; a `*` anywhere else is refused.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let (subtree, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if let Some(label) = rest.split('.').find(|l| l.contains('*')) {
            return Err(bad(
                input,
                label,
                "a wildcard is only `*.` before the whole name",
            ));
        }
        let name = rest.parse::<DomainName>().map_err(|e| match e {
            ModelError::BadDomain { label, why, .. } => ModelError::BadDomain {
                input: crate::limits::quote(input, 300),
                label,
                why,
            },
            other => other,
        })?;
        if name.label_count() < 2 {
            // A single label is a top-level domain (or a typo: a local file's
            // `not-an-address` must be a rejected line, not an entry).
            return Err(bad(
                input,
                name.as_str(),
                "is a single label: an entry names a domain with its suffix (`evil.example`)",
            ));
        }
        Ok(Domain { name, subtree })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        s.parse().unwrap()
    }

    #[test]
    fn normalises_case_trailing_dot_and_idna() {
        assert_eq!(d("Evil.EXAMPLE.").to_string(), "evil.example");
        assert_eq!(d("*.Bücher.example").to_string(), "*.xn--bcher-kva.example");
        assert_eq!(d(" x_y.evil.example ").to_string(), "x_y.evil.example");
    }

    #[test]
    fn refusals_name_the_label_and_why() {
        let e = |s: &str| s.parse::<Domain>().unwrap_err().to_string();
        assert!(e("a..example").contains("is empty"), "{}", e("a..example"));
        assert!(e("-bad.example").contains("`-bad`"));
        assert!(e("ev il.example").contains("holds ` `"));
        assert!(e(&format!("{}.example", "a".repeat(64))).contains("64 bytes"));
        assert!(e("www.*.example").contains("wildcard"));
        assert!(e("1.2.3.4").contains("all digits"));
        assert!(e("").contains("empty"));
        assert!(e("not-an-address").contains("single label"));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(e(&long).contains("at most 253"), "{}", e(&long));
    }

    #[test]
    fn covers_follows_the_subtree_flag() {
        let n = |s: &str| s.parse::<DomainName>().unwrap();
        assert!(d("*.evil.example").covers(&n("a.b.evil.example")));
        assert!(d("*.evil.example").covers(&n("evil.example")));
        assert!(!d("*.evil.example").covers(&n("notevil.example")));
        assert!(!d("evil.example").covers(&n("a.evil.example")));
        assert!(d("evil.example").covers(&n("evil.example")));
        assert!(d("www.isp.example").touches_subtree(&n("isp.example")));
        assert!(d("*.example.net").touches_subtree(&n("isp.example.net")));
        assert!(!d("isp.example.net").touches_subtree(&n("www.isp.example.net")));
        assert!(!d("*.other.example").touches_subtree(&n("isp.example")));
        assert_eq!(n("a.b.example").parent(), Some(n("b.example")));
        assert_eq!(n("example").parent(), None);
    }
}
