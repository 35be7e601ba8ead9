//! The canonical text of prefixes, identities and entries (exactly what
//! `Display` writes), appended to a buffer by hand for IPv4. Through `fmt`,
//! a million entries took a quarter second each time they were written: the
//! set digest hashes every entry's text, and the wire and the files carry
//! every prefix as text.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::{Entry, Identity, Prefix, Target};

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, mut n: u32) {
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
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

impl Prefix {
    /// Appends what `Display` writes: `ADDR/LEN`.
    pub fn write_text(&self, out: &mut String) {
        match self.addr() {
            IpAddr::V4(a) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    push_decimal(out, o as u32);
                }
            }
            // Rare enough, and std's zero-run compression is the canonical
            // form: left to it.
            IpAddr::V6(a) => write!(out, "{a}").expect("writing to a String"),
        }
        out.push('/');
        push_decimal(out, self.len() as u32);
    }

    /// What `Display` writes, as a new string.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(20);
        self.write_text(&mut s);
        s
    }
}

/// The target, then protocol and port: an identity's text.
fn write_key(target: &Target, scope: Option<crate::PortScope>, out: &mut String) {
    match target {
        Target::Prefix(p) => p.write_text(out),
        Target::Domain(d) => write!(out, "{d}").expect("writing to a String"),
    }
    if let Some(s) = scope {
        out.push(' ');
        out.push_str(s.protocol.as_str());
        out.push(' ');
        push_decimal(out, s.port as u32);
    }
}

impl Identity {
    /// Appends what `Display` writes: the target, then protocol and port.
    pub fn write_text(&self, out: &mut String) {
        write_key(&self.target, self.scope, out);
    }
}

impl Entry {
    /// Appends what `Display` writes: the identity, the action, and the
    /// direction unless it is both.
    pub fn write_text(&self, out: &mut String) {
        write_key(&self.target, self.scope, out);
        out.push(' ');
        out.push_str(self.action.as_str());
        if self.direction != crate::Direction::Both {
            out.push(' ');
            out.push_str(self.direction.as_str());
        }
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
    fn the_text_is_what_display_writes() {
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
        for e in &entries {
            let (mut s, mut id) = (String::new(), String::from("x"));
            e.write_text(&mut s);
            assert_eq!(s, e.to_string());
            e.identity().write_text(&mut id);
            assert_eq!(id, format!("x{}", e.identity()));
            if let Target::Prefix(p) = e.target {
                assert_eq!(p.text(), p.to_string());
            }
        }
        // Every IPv4 octet and length, against std's formatting.
        for i in 0..=255u32 {
            let a = std::net::Ipv4Addr::from(i << 24 | i << 8 | (255 - i));
            let p = Prefix::host(a.into());
            assert_eq!(p.text(), p.to_string());
            assert_eq!(
                p.truncate(i as u8 % 33).text(),
                p.truncate(i as u8 % 33).to_string()
            );
        }
        let mut s = String::new();
        for n in [0, 7, 10, 99, 100, 65535, u32::MAX] {
            s.clear();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
