//! Agent labels (`site=tokyo-1`, `role=canary`) and the selectors that pick
//! agents by them: what a staged rollout divides the fleet by.

use std::collections::BTreeMap;

use crate::ModelError;

/// An agent's labels, key to value.
pub type Labels = BTreeMap<String, String>;

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 63
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=')
}

/// Checks one label.
pub fn check_label(key: &str, value: &str) -> Result<(), ModelError> {
    if !valid_key(key) {
        return Err(ModelError::BadLabel(format!(
            "`{key}`: a label key is 1-63 of a-z, 0-9, `_`, `.`, `-`"
        )));
    }
    if !valid_value(value) {
        return Err(ModelError::BadLabel(format!(
            "`{key}={value}`: a label value is 1-128 printable characters without spaces, `,` or `=`"
        )));
    }
    Ok(())
}

/// `KEY=VALUE`, as `--label` takes it.
pub fn parse_label(s: &str) -> Result<(String, String), ModelError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| ModelError::BadLabel(format!("`{s}`: expected KEY=VALUE")))?;
    check_label(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// `role=canary,site=tokyo-1`: every pair must match (an empty selector
/// matches every agent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<(String, String)>);

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, ModelError> {
        let pairs = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(parse_label)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector(pairs))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_selectors() {
        assert_eq!(
            parse_label("site=tokyo-1").unwrap(),
            ("site".into(), "tokyo-1".into())
        );
        for bad in ["site", "=x", "Site=x", "site=", "site=a b", "site=a,b"] {
            let e = parse_label(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
        let s = Selector::parse("role=canary, site=tokyo-1").unwrap();
        let mut l = Labels::new();
        l.insert("role".into(), "canary".into());
        assert!(!s.matches(&l));
        l.insert("site".into(), "tokyo-1".into());
        assert!(s.matches(&l));
        assert!(Selector::parse("").unwrap().matches(&Labels::new()));
        assert_eq!(s.to_string(), "role=canary,site=tokyo-1");
    }
}
