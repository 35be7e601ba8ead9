//! The canonical text of prefixes, identities and entries: their one
//! definition, which `Display` writes and which is appended to a buffer
//! without `fmt`'s argument machinery (digits by hand for IPv4). Through
//! `fmt`, a million entries took a quarter second each time they were
//! written: the set digest hashes every entry's text, and the wire and the
//! files carry every prefix as text.

use std::fmt::{self, Write};
use std::net::IpAddr;

use crate::{Direction, Entry, Identity, Prefix, Target};

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u32) {
    decimal(out, n).expect("writing to a String");
}

fn decimal(out: &mut impl Write, mut n: u32) -> fmt::Result {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.write_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"))
}

impl Prefix {
    /// `ADDR/LEN`.
    fn write_into(&self, out: &mut impl Write) -> fmt::Result {
        match self.addr() {
            IpAddr::V4(a) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.write_char('.')?;
                    }
                    decimal(out, o as u32)?;
                }
            }
            // Rare enough, and std's zero-run compression is the canonical
            // form: left to it.
            IpAddr::V6(a) => write!(out, "{a}")?,
        }
        out.write_char('/')?;
        decimal(out, self.len() as u32)
    }

    /// Appends what `Display` writes.
    pub fn write_text(&self, out: &mut String) {
        self.write_into(out).expect("writing to a String");
    }

    /// What `Display` writes, as a new string.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(20);
        self.write_text(&mut s);
        s
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_into(f)
    }
}

/// The target, then protocol and port: an identity's text.
fn write_key(
    target: &Target,
    scope: Option<crate::PortScope>,
    out: &mut impl Write,
) -> fmt::Result {
    match target {
        Target::Prefix(p) => p.write_into(out)?,
        Target::Domain(d) => write!(out, "{d}")?,
    }
    if let Some(s) = scope {
        out.write_char(' ')?;
        out.write_str(s.protocol.as_str())?;
        out.write_char(' ')?;
        decimal(out, s.port as u32)?;
    }
    Ok(())
}

impl Identity {
    /// Appends what `Display` writes: the target, then protocol and port.
    pub fn write_text(&self, out: &mut String) {
        write_key(&self.target, self.scope, out).expect("writing to a String");
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key(&self.target, self.scope, f)
    }
}

impl Entry {
    /// The identity, the action, and the direction unless it is both: the
    /// blocklist file syntax, so a printed entry can be pasted back.
    fn write_into(&self, out: &mut impl Write) -> fmt::Result {
        write_key(&self.target, self.scope, out)?;
        out.write_char(' ')?;
        out.write_str(self.action.as_str())?;
        if self.direction != Direction::Both {
            out.write_char(' ')?;
            out.write_str(self.direction.as_str())?;
        }
        Ok(())
    }

    /// Appends what `Display` writes.
    pub fn write_text(&self, out: &mut String) {
        self.write_into(out).expect("writing to a String");
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_into(f)
    }
}

/// Test entries of every shape over `targets`: each with no scope, TCP and
/// UDP (not for a domain), each action and each direction.
#[cfg(test)]
pub(crate) fn every_shape(targets: &[&str]) -> Vec<Entry> {
    use crate::{Action, Direction, PortScope, Protocol};
    let scopes = [
        None,
        Some(PortScope {
            protocol: Protocol::Tcp,
            port: 1,
        }),
        Some(PortScope {
            protocol: Protocol::Udp,
            port: 65535,
        }),
    ];
    let mut out = Vec::new();
    for t in targets {
        let target: Target = t.parse().expect("a test target");
        for scope in scopes {
            if matches!(target, Target::Domain(_)) && scope.is_some() {
                continue;
            }
            for action in [Action::Drop, Action::Monitor] {
                for direction in [Direction::Both, Direction::To, Direction::From] {
                    out.push(Entry {
                        target: target.clone(),
                        scope,
                        action,
                        direction,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_blocklist_syntax_whether_displayed_or_appended() {
        let targets = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.0.2.1/32",
            "203.0.113.255/32",
            "100.64.9.0/24",
            "2001:db8::/32",
            "2001:db8::1/128",
            "::/0",
            "::ffff:192.0.2.1/128",
            "evil.example",
            "*.evil.example",
        ];
        let entries = every_shape(&targets);
        assert_eq!(entries.len(), (9 * 3 + 2) * 6);
        // The blocklist syntax, spelt out with std's formatting.
        let prefix = |p: &Prefix| format!("{}/{}", p.addr(), p.len());
        for e in &entries {
            let target = match &e.target {
                Target::Prefix(p) => prefix(p),
                Target::Domain(d) => d.to_string(),
            };
            let ident = match e.scope {
                None => target,
                Some(s) => format!("{target} {} {}", s.protocol, s.port),
            };
            let line = match e.direction {
                Direction::Both => format!("{ident} {}", e.action),
                d => format!("{ident} {} {d}", e.action),
            };
            let (mut s, mut id) = (String::new(), String::from("x"));
            e.write_text(&mut s);
            assert_eq!((s.as_str(), e.to_string()), (line.as_str(), line.clone()));
            e.identity().write_text(&mut id);
            assert_eq!(id, format!("x{ident}"));
            assert_eq!(e.identity().to_string(), ident);
            if let Target::Prefix(p) = e.target {
                assert_eq!((p.text(), p.to_string()), (prefix(&p), prefix(&p)));
            }
        }
        // Every IPv4 octet and length, against std's formatting.
        for i in 0..=255u32 {
            let a = std::net::Ipv4Addr::from(i << 24 | i << 8 | (255 - i));
            let p = Prefix::host(a.into()).truncate(i as u8 % 33);
            assert_eq!(p.text(), prefix(&p));
            assert_eq!(Prefix::host(a.into()).text(), format!("{a}/32"));
        }
        let mut s = String::new();
        for n in [0, 7, 10, 99, 100, 65535, u32::MAX] {
            s.clear();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
