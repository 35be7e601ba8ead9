//! The centre's kill switch and held changes, as closed sets of values
//! shared by the coordinator, the agent and the CLI. The wire and the store
//! carry them as text (`"off"`, `""` for no override); everything else
//! handles these types.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::WireError;

/// How an agent treats listed traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Pass everything without lookups (the kill switch).
    Off,
    /// Drop nothing; count what would have been dropped.
    Monitor,
    /// Drop packets that match drop entries.
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::Monitor, Mode::Enforce];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }

    /// A mode as text: `off`, `monitor` or `enforce` (any case).
    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// An override as the wire carries it: empty clears (None), anything
    /// else must be a mode. `field` names the field in the error.
    pub fn from_wire(field: &str, s: &str) -> Result<Option<Mode>, WireError> {
        if s.is_empty() {
            return Ok(None);
        }
        Mode::parse(s).map(Some).ok_or_else(|| {
            WireError::new(
                field,
                format!("`{s}` is not off, monitor or enforce (or empty to clear)"),
            )
        })
    }

    /// The wire form of an override (None: empty).
    pub fn to_wire(m: Option<Mode>) -> &'static str {
        m.map_or("", Mode::as_str)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a kill-switch override applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every agent without an override of its own.
    Fleet,
    Agent(String),
}

impl Scope {
    /// The wire's agent id: empty means the fleet.
    pub fn from_agent_id(agent_id: &str) -> Scope {
        if agent_id.is_empty() {
            Scope::Fleet
        } else {
            Scope::Agent(agent_id.to_string())
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Fleet => f.write_str("fleet"),
            Scope::Agent(a) => write!(f, "agent {a}"),
        }
    }
}

/// The overrides in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    pub fleet: Option<Mode>,
    pub agents: BTreeMap<String, Mode>,
}

impl Modes {
    pub fn from_overrides(rows: impl IntoIterator<Item = (Scope, Mode)>) -> Self {
        let mut m = Modes::default();
        for (scope, mode) in rows {
            match scope {
                Scope::Fleet => m.fleet = Some(mode),
                Scope::Agent(a) => {
                    m.agents.insert(a, mode);
                }
            }
        }
        m
    }

    /// The mode `agent` must run in (None: its own): its override, else the fleet's.
    pub fn for_agent(&self, agent: &str) -> Option<Mode> {
        self.agents.get(agent).copied().or(self.fleet)
    }
}

/// What a held change would do when confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeldKind {
    /// Request: an encoded c2wall.v1.PublishRequest.
    Publish,
    /// Request: an encoded c2wall.v1.ImportChunk holding the whole set.
    Import,
}

/// Where a held change stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeldState {
    #[default]
    Open,
    Confirmed,
    Rejected,
    /// A later import of the same source replaced it before anyone decided.
    Superseded,
}

macro_rules! text_enum {
    ($t:ty, $($v:ident => $s:literal),+) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)+ _ => None }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(HeldKind, Publish => "publish", Import => "import");
text_enum!(HeldState, Open => "open", Confirmed => "confirmed", Rejected => "rejected", Superseded => "superseded");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_text_round_trips_and_refuses_others() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
            assert_eq!(Mode::from_wire("mode", m.as_str()), Ok(Some(m)));
        }
        assert_eq!(Mode::from_wire("mode", ""), Ok(None));
        let e = Mode::from_wire("mode", "drop").unwrap_err();
        assert_eq!(e.field, "mode");
        assert!(e.reason.contains("`drop`"), "{e}");
        for k in [HeldKind::Publish, HeldKind::Import] {
            assert_eq!(HeldKind::parse(k.as_str()), Some(k));
        }
        for s in [
            HeldState::Open,
            HeldState::Confirmed,
            HeldState::Rejected,
            HeldState::Superseded,
        ] {
            assert_eq!(HeldState::parse(s.as_str()), Some(s));
        }
        assert_eq!(HeldState::parse("closed"), None);
    }

    #[test]
    fn an_agent_override_wins_over_the_fleet() {
        let m = Modes::from_overrides([
            (Scope::Fleet, Mode::Monitor),
            (Scope::Agent("a".into()), Mode::Off),
        ]);
        assert_eq!(m.for_agent("a"), Some(Mode::Off));
        assert_eq!(m.for_agent("b"), Some(Mode::Monitor));
        assert_eq!(Modes::default().for_agent("b"), None);
    }
}
