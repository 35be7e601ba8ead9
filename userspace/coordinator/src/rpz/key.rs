//! The TSIG key: its file in BIND's format (`key "NAME" { algorithm
//! hmac-sha256; secret "BASE64"; };`), so `dig -k`, BIND's `include` and
//! Knot read the file `c2wall-coordinator tsig-keygen` writes.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::CoordError;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The only algorithm offered: hmac-sha256 (RFC 8945 makes it mandatory).
pub const ALGORITHM: &str = "hmac-sha256";

/// A shared key: its name (lower case, no final dot) and secret.
#[derive(Clone)]
pub struct Key {
    pub name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name).finish()
    }
}

impl Key {
    pub fn new(name: &str, secret: Vec<u8>) -> Result<Self, CoordError> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(CoordError::Setting(format!(
                "TSIG key name `{name}` is not a DNS name"
            )));
        }
        if secret.len() < 16 {
            return Err(CoordError::Setting(format!(
                "TSIG key `{name}`: the secret is {} bytes, at least 16 are needed",
                secret.len()
            )));
        }
        Ok(Key { name, secret })
    }

    /// A fresh key of 32 random bytes.
    pub fn generate(name: &str) -> Result<Self, CoordError> {
        let mut secret = vec![0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .map_err(|e| CoordError::Setting(format!("reading /dev/urandom: {e}")))?;
        Key::new(name, secret)
    }

    /// BIND's key-file statement.
    pub fn to_bind(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm {ALGORITHM};\n\tsecret \"{}\";\n}};\n",
            self.name,
            base64::engine::general_purpose::STANDARD.encode(&self.secret)
        )
    }

    /// Reads a key file in BIND's format (the first `key` statement).
    pub fn load(path: &Path) -> Result<Self, CoordError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CoordError::Setting(format!("TSIG key file {}: {e}", path.display())))?;
        Key::parse(&text, &format!("file {}", path.display()))
    }

    /// Parses a key statement; `origin` names where it came from in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CoordError> {
        Key::parse_statement(text)
            .map_err(|why| CoordError::Setting(format!("TSIG key {origin}: {why}")))
    }

    fn parse_statement(text: &str) -> Result<Self, String> {
        let text = without_comments(text);
        let after_key = text
            .split_once("key")
            .map(|(_, r)| r)
            .ok_or("no `key \"NAME\" { ... };` statement")?;
        let name = quoted(after_key).ok_or("the key has no quoted name")?;
        let body = after_key
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(b, _)| b)
            .ok_or("the key statement has no `{ ... }`")?;
        let mut algorithm = None;
        let mut secret = None;
        for stmt in body.split(';') {
            let stmt = stmt.trim();
            if let Some(a) = stmt.strip_prefix("algorithm") {
                algorithm = Some(a.trim().trim_matches('"').to_ascii_lowercase());
            } else if let Some(s) = stmt.strip_prefix("secret") {
                secret = Some(quoted(s).ok_or("the secret is not quoted")?);
            }
        }
        let algorithm = algorithm.ok_or("no `algorithm` in the key")?;
        if algorithm.trim_end_matches('.') != ALGORITHM {
            return Err(format!(
                "algorithm `{algorithm}` is not supported (use {ALGORITHM})"
            ));
        }
        let secret = secret.ok_or("no `secret` in the key")?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("the secret is not base64: {e}"))?;
        Key::new(&name, secret).map_err(|e| e.to_string())
    }

    pub(super) fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }
}

/// The text with BIND's comments (`//`, `#` to the end of the line, and
/// `/* ... */`) removed outside quoted strings: a base64 secret may hold
/// `//`, so a comment marker inside quotes is data.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            in_quotes = c != '"';
            out.push(c);
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_quotes = true;
                out.push(c);
            }
            ('#', _) | ('/', Some('/')) => while chars.next_if(|&n| n != '\n').is_some() {},
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

fn quoted(s: &str) -> Option<String> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some(s[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_round_trips_in_binds_format() {
        let k = Key::generate("Transfer.Key.").unwrap();
        let text = k.to_bind();
        assert!(text.starts_with("key \"transfer.key\" {\n\talgorithm hmac-sha256;"));
        let back = Key::parse(&text, "test").unwrap();
        assert_eq!(
            (back.name.as_str(), &back.secret),
            ("transfer.key", &k.secret)
        );
        let e = Key::parse(
            "key \"k\" { algorithm hmac-md5; secret \"AAAA\"; };",
            "test",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hmac-md5"), "{e}");
        let e = Key::parse("key \"k\" { algorithm hmac-sha256; };", "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `secret`"), "{e}");
    }

    #[test]
    fn comment_markers_inside_the_secret_are_data() {
        // Base64 holds `/`, so one secret in about a hundred has `//`:
        // 0xff 0xff 0xff encodes as `////`.
        let k = Key::new("k", vec![0xff; 18]).unwrap();
        let text = format!(
            "# a comment\n/* another\n one */ {} // trailing \"quote\n",
            k.to_bind()
        );
        assert!(text.contains("////"), "{text}");
        let back = Key::parse(&text, "test").unwrap();
        assert_eq!(back.secret, k.secret);
    }
}
