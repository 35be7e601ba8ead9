//! A blocklist entry: a C&C prefix (optionally scoped to the C&C-side
//! protocol and port, with the direction it applies to) or a C&C domain, and
//! what to do on a match.

use std::{fmt, str::FromStr};

use crate::{Domain, ModelError, Prefix};

/// What an entry lists: addresses (enforced by the edge's XDP program and
/// border routers) or a DNS name (enforced by the ISP's resolvers through
/// RPZ, and at the edge by following DNS answers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Prefix(Prefix),
    Domain(Domain),
}

impl Target {
    pub fn prefix(&self) -> Option<Prefix> {
        match self {
            Target::Prefix(p) => Some(*p),
            Target::Domain(_) => None,
        }
    }
    pub fn domain(&self) -> Option<&Domain> {
        match self {
            Target::Prefix(_) => None,
            Target::Domain(d) => Some(d),
        }
    }
}

impl From<Prefix> for Target {
    fn from(p: Prefix) -> Self {
        Target::Prefix(p)
    }
}

impl From<Domain> for Target {
    fn from(d: Domain) -> Self {
        Target::Domain(d)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Prefix(p) => p.fmt(f),
            Target::Domain(d) => d.fmt(f),
        }
    }
}

impl FromStr for Target {
    type Err = ModelError;
    /// An address or prefix if it reads as one; otherwise a name when it
    /// holds a letter or a `*` (so a mistyped address is reported as an
    /// address, not as a strange name).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Prefix>() {
            Ok(p) => Ok(Target::Prefix(p)),
            Err(e) => {
                let t = s.trim();
                let looks_like_name = !t.contains(':')
                    && !t.contains('/')
                    && t.chars().any(|c| c.is_alphabetic() || c == '*' || c == '_');
                if looks_like_name {
                    Ok(Target::Domain(t.parse()?))
                } else {
                    Err(e)
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IANA protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
    /// The protocol of an IANA number, if c2wall knows it.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl FromStr for Protocol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [("tcp", Protocol::Tcp), ("udp", Protocol::Udp)]
            .into_iter()
            .find(|(w, _)| s.eq_ignore_ascii_case(w))
            .map(|(_, p)| p)
            .ok_or_else(|| ModelError::BadProtocol(crate::limits::quote(s, 64)))
    }
}

impl Protocol {
    /// Its word in the blocklist syntax (what `Display` writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The C&C-side protocol and port an entry is restricted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortScope {
    pub protocol: Protocol,
    pub port: u16,
}

impl PortScope {
    pub fn parse(protocol: &str, port: &str) -> Result<Self, ModelError> {
        let protocol = protocol.parse()?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && !port.starts_with('+'))
            .ok_or_else(|| ModelError::BadPort(crate::limits::quote(port, 64)))?;
        Ok(PortScope { protocol, port })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Drop matching packets (in enforce mode).
    #[default]
    Drop,
    /// Count matching packets as would-drop, pass them.
    Monitor,
}

impl FromStr for Action {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Compared in place: a list file has a million of these.
        [("drop", Action::Drop), ("monitor", Action::Monitor)]
            .into_iter()
            .find(|(w, _)| s.eq_ignore_ascii_case(w))
            .map(|(_, a)| a)
            .ok_or_else(|| ModelError::BadAction(crate::limits::quote(s, 64)))
    }
}

impl Action {
    /// Its word in the blocklist syntax (what `Display` writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Drop => "drop",
            Action::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which packets an entry matches: those going to the listed prefix (subscriber to
/// C&C, the prefix is the destination), those coming from it, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    #[default]
    Both,
    To,
    From,
}

impl Direction {
    pub fn includes_to(self) -> bool {
        matches!(self, Direction::Both | Direction::To)
    }
    pub fn includes_from(self) -> bool {
        matches!(self, Direction::Both | Direction::From)
    }
}

impl FromStr for Direction {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words = [
            ("both", Direction::Both),
            ("to", Direction::To),
            ("from", Direction::From),
        ];
        words
            .into_iter()
            .find(|(w, _)| s.eq_ignore_ascii_case(w))
            .map(|(_, d)| d)
            .ok_or_else(|| ModelError::BadDirection(crate::limits::quote(s, 64)))
    }
}

impl Direction {
    /// Its word in the blocklist syntax (what `Display` writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::To => "to",
            Direction::From => "from",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What makes two entries the same entry: the target and the port scope.
/// Direction and action are attributes of the entry, not part of its identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub target: Target,
    pub scope: Option<PortScope>,
}

impl Identity {
    pub fn prefix(&self) -> Option<Prefix> {
        self.target.prefix()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub target: Target,
    pub scope: Option<PortScope>,
    pub action: Action,
    pub direction: Direction,
}

impl Entry {
    pub fn identity(&self) -> Identity {
        Identity {
            target: self.target.clone(),
            scope: self.scope,
        }
    }
    /// The listed prefix; `None` for a domain entry.
    pub fn listed_prefix(&self) -> Option<Prefix> {
        self.target.prefix()
    }
    /// Refuses what a domain entry cannot carry: a port scope or a
    /// direction (a resolver sees names, not flows).
    pub fn check(&self) -> Result<(), ModelError> {
        if let Target::Domain(d) = &self.target {
            if self.scope.is_some() {
                return Err(ModelError::DomainWith {
                    domain: d.to_string(),
                    what: "a protocol and port",
                });
            }
            if self.direction != Direction::Both {
                return Err(ModelError::DomainWith {
                    domain: d.to_string(),
                    what: "a direction",
                });
            }
        }
        Ok(())
    }
}

/// One entry in the blocklist line syntax (comment already removed):
/// `PREFIX [tcp|udp PORT] [drop|monitor] [to|from|both]` or
/// `NAME [drop|monitor]` (`evil.example`, `*.evil.example`).
pub fn parse_entry(line: &str) -> Result<Entry, String> {
    let mut tokens = line.split_whitespace();
    let target: Target = tokens
        .next()
        .ok_or("empty entry")?
        .parse()
        .map_err(|e: ModelError| e.to_string())?;
    let mut scope = None;
    let mut action = None;
    let mut direction = None;
    // Keywords are compared in place, case-insensitively: no allocation a
    // token (a list file has millions).
    let is = |t: &str, words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    while let Some(t) = tokens.next() {
        match t {
            t if is(t, &["tcp", "udp"]) => {
                let port = tokens
                    .next()
                    .ok_or_else(|| format!("`{t}` must be followed by a port"))?;
                if scope.is_some() {
                    return Err("more than one protocol/port".into());
                }
                scope = Some(PortScope::parse(t, port).map_err(|e| e.to_string())?);
            }
            t if is(t, &["drop", "monitor"]) => {
                if action.is_some() {
                    return Err("more than one action".into());
                }
                action = Some(t.parse::<Action>().map_err(|e| e.to_string())?);
            }
            t if is(t, &["to", "from", "both"]) => {
                if direction.is_some() {
                    return Err("more than one direction".into());
                }
                direction = Some(t.parse::<Direction>().map_err(|e| e.to_string())?);
            }
            _ => {
                return Err(format!(
                    "unexpected `{t}` (expected tcp|udp PORT, drop|monitor, to|from|both)"
                ))
            }
        }
    }
    let entry = Entry {
        target,
        scope,
        action: action.unwrap_or_default(),
        direction: direction.unwrap_or_default(),
    };
    entry.check().map_err(|e| e.to_string())?;
    Ok(entry)
}
