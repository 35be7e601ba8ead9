//! c2wall.v1 wire types <-> domain types. Invalid input is refused with the
//! path of the offending field, including its index inside a batch
//! (`upserts[3].key.prefix: ...`), and maps to INVALID_ARGUMENT.

use c2wall_proto::v1 as pb;

use crate::{limits, Action, Direction, Entry, Record};

pub use crate::error::WireError;

impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

mod direct;
mod key;

pub use direct::encode_entry_field;
pub use key::{identity_from_wire, identity_to_wire};

impl TryFrom<&pb::Entry> for Record {
    type Error = WireError;

    fn try_from(e: &pb::Entry) -> Result<Self, Self::Error> {
        let key = e
            .key
            .as_ref()
            .ok_or_else(|| WireError::new("key", "missing"))?;
        let ident = identity_from_wire(key).map_err(|err| err.within("key"))?;
        let action = match pb::Action::try_from(e.action) {
            Ok(pb::Action::Unspecified | pb::Action::Drop) => Action::Drop,
            Ok(pb::Action::Monitor) => Action::Monitor,
            Err(_) => {
                return Err(WireError::new(
                    "action",
                    format!("unknown action {}", e.action),
                ))
            }
        };
        let direction = match pb::Direction::try_from(e.direction) {
            Ok(pb::Direction::Unspecified | pb::Direction::Both) => Direction::Both,
            Ok(pb::Direction::To) => Direction::To,
            Ok(pb::Direction::From) => Direction::From,
            Err(_) => {
                return Err(WireError::new(
                    "direction",
                    format!("unknown direction {}", e.direction),
                ))
            }
        };
        let confidence = u8::try_from(e.confidence)
            .ok()
            .filter(|c| *c <= 100)
            .ok_or_else(|| {
                WireError::new(
                    "confidence",
                    format!("{} is not within 0-100", e.confidence),
                )
            })?;
        limits::text("source", &e.source, limits::SOURCE_BYTES)?;
        limits::text("category", &e.category, limits::CATEGORY_BYTES)?;
        limits::text("reference", &e.reference, limits::REFERENCE_BYTES)?;
        limits::text("created_by", &e.created_by, limits::NAME_BYTES)?;
        limits::time("valid_from", e.valid_from)?;
        limits::time("valid_until", e.valid_until)?;
        limits::time("promote_at", e.promote_at)?;
        limits::time("created_at", e.created_at)?;
        let valid_until = (e.valid_until != 0).then_some(e.valid_until);
        if let Some(u) = valid_until {
            if u <= e.valid_from {
                return Err(WireError::new(
                    "valid_until",
                    format!("{u} is not after valid_from {}", e.valid_from),
                ));
            }
        }
        if e.chain.len() > crate::record::MAX_HOPS {
            return Err(WireError::new(
                "chain",
                format!(
                    "{} hops; at most {} (a loop of coordinators following each other?)",
                    e.chain.len(),
                    crate::record::MAX_HOPS
                ),
            ));
        }
        let chain = e
            .chain
            .iter()
            .enumerate()
            .map(|(i, h)| hop_from_wire(h).map_err(|err| err.within(&format!("chain[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let promote_at = (e.promote_at != 0).then_some(e.promote_at);
        if promote_at.is_some() && action != Action::Monitor {
            return Err(WireError::new(
                "promote_at",
                "only a monitor entry is promoted (publish it with action monitor)",
            ));
        }
        let entry = Entry {
            target: ident.target,
            scope: ident.scope,
            action,
            direction,
        };
        entry
            .check()
            .map_err(|err| WireError::new("direction", err.to_string()))?;
        Ok(Record {
            promote_at,
            entry,
            source: e.source.clone(),
            category: e.category.clone(),
            reference: e.reference.clone(),
            confidence,
            valid_from: e.valid_from,
            valid_until,
            created_by: e.created_by.clone(),
            created_at: e.created_at,
            chain,
        })
    }
}

fn hop_from_wire(h: &pb::Hop) -> Result<crate::Hop, WireError> {
    limits::text("upstream", &h.upstream, limits::NAME_BYTES)?;
    limits::text("source", &h.source, limits::SOURCE_BYTES)?;
    limits::text("created_by", &h.created_by, limits::NAME_BYTES)?;
    limits::time("created_at", h.created_at)?;
    Ok(crate::Hop {
        upstream: h.upstream.clone(),
        source: h.source.clone(),
        created_by: h.created_by.clone(),
        created_at: h.created_at,
        version: h.version,
    })
}

impl From<&crate::Hop> for pb::Hop {
    fn from(h: &crate::Hop) -> Self {
        pb::Hop {
            upstream: h.upstream.clone(),
            source: h.source.clone(),
            created_by: h.created_by.clone(),
            created_at: h.created_at,
            version: h.version,
        }
    }
}

/// The wire form of an entry without provenance (key, direction, action).
pub fn entry_to_wire(e: &Entry) -> pb::Entry {
    pb::Entry {
        key: Some(identity_to_wire(&e.identity())),
        direction: direction_to_wire(e.direction) as i32,
        action: action_to_wire(e.action) as i32,
        ..Default::default()
    }
}

pub(super) fn direction_to_wire(d: Direction) -> pb::Direction {
    match d {
        Direction::Both => pb::Direction::Both,
        Direction::To => pb::Direction::To,
        Direction::From => pb::Direction::From,
    }
}

pub(super) fn action_to_wire(a: Action) -> pb::Action {
    match a {
        Action::Drop => pb::Action::Drop,
        Action::Monitor => pb::Action::Monitor,
    }
}

impl From<&Record> for pb::Entry {
    fn from(r: &Record) -> Self {
        pb::Entry {
            source: r.source.clone(),
            category: r.category.clone(),
            reference: r.reference.clone(),
            confidence: r.confidence as u32,
            valid_from: r.valid_from,
            valid_until: r.valid_until.unwrap_or(0),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            promote_at: r.promote_at.unwrap_or(0),
            chain: r.chain.iter().map(pb::Hop::from).collect(),
            ..entry_to_wire(&r.entry)
        }
    }
}

/// Converts a batch, naming the first bad element as `field[i]`.
pub fn records_from_wire(list: &[pb::Entry], field: &str) -> Result<Vec<Record>, WireError> {
    list.iter()
        .enumerate()
        .map(|(i, e)| Record::try_from(e).map_err(|err| err.within(&format!("{field}[{i}]"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefix: &str, protocol: pb::Protocol, port: u32) -> pb::Entry {
        pb::Entry {
            key: Some(pb::EntryKey {
                prefix: prefix.into(),
                protocol: protocol as i32,
                port,
                domain: String::new(),
            }),
            source: "feed".into(),
            confidence: 80,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let e = pb::Entry {
            action: pb::Action::Monitor as i32,
            direction: pb::Direction::To as i32,
            valid_until: 5,
            ..entry("203.0.113.0/24", pb::Protocol::Tcp, 443)
        };
        let r = Record::try_from(&e).unwrap();
        assert_eq!(r.entry.to_string(), "203.0.113.0/24 tcp 443 monitor to");
        assert_eq!(pb::Entry::from(&r), e);
    }

    #[test]
    fn errors_name_the_field_and_the_index() {
        let batch = vec![
            entry("192.0.2.1", pb::Protocol::Unspecified, 0),
            entry("192.0.2.1", pb::Protocol::Unspecified, 0),
            entry("192.0.2.9/24", pb::Protocol::Unspecified, 0),
        ];
        let e = records_from_wire(&batch, "upserts").unwrap_err();
        assert_eq!(e.field, "upserts[2].key.prefix");
        assert!(e.reason.contains("192.0.2.0/24"), "{e}");
        let status: tonic::Status = e.into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("upserts[2].key.prefix:"));

        let bad = [
            (entry("192.0.2.1", pb::Protocol::Tcp, 0), "key.port"),
            (entry("192.0.2.1", pb::Protocol::Tcp, 70000), "key.port"),
            (
                entry("192.0.2.1", pb::Protocol::Unspecified, 80),
                "key.port",
            ),
            (
                pb::Entry {
                    confidence: 101,
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "confidence",
            ),
            (
                pb::Entry {
                    action: 9,
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "action",
            ),
            (
                pb::Entry {
                    valid_from: 10,
                    valid_until: 10,
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "valid_until",
            ),
            (pb::Entry::default(), "key"),
            (
                pb::Entry {
                    reference: "r".repeat(crate::limits::REFERENCE_BYTES + 1),
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "reference",
            ),
            (
                pb::Entry {
                    valid_until: crate::limits::MAX_TIME + 1,
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "valid_until",
            ),
            (
                pb::Entry {
                    action: pb::Action::Monitor as i32,
                    promote_at: i64::MAX,
                    ..entry("192.0.2.1", pb::Protocol::Unspecified, 0)
                },
                "promote_at",
            ),
        ];
        for (e, field) in bad {
            assert_eq!(Record::try_from(&e).unwrap_err().field, field, "{e:?}");
        }
    }
}

/// The subscribe reply's header with the coordinator's latest version: a
/// subscriber learns it before any frame, so it knows it is behind even when
/// it cannot apply what follows.
pub const LATEST_VERSION_HEADER: &str = "x-c2wall-latest-version";

/// Adds `authorization: Bearer TOKEN` to every call (no token: nothing).
#[derive(Clone, Default)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// A token as given (surrounding whitespace ignored); an empty one is none.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Bearer(None)),
            Some(t) => format!("Bearer {t}")
                .parse()
                .map(|v| Bearer(Some(v)))
                .map_err(|_| "the token has characters a header cannot carry".to_string()),
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Coordinator URLs as a config file gives them: one string (several
/// separated by commas) or an array of strings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

impl Urls {
    pub fn into_list(self) -> Vec<String> {
        match self {
            Urls::One(s) => url_list([s]),
            Urls::Many(v) => url_list(v),
        }
    }
}

/// URLs from flags, the environment or a file: each value may hold several
/// separated by commas; blanks are dropped, duplicates kept once, in order.
pub fn url_list(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        for u in v.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if !out.iter().any(|o| o == u) {
                out.push(u.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn url_lists_split_commas_and_keep_order() {
        assert_eq!(
            url_list([
                "https://a:1, https://b:2".to_string(),
                "https://a:1".into(),
                " ".into()
            ]),
            vec!["https://a:1", "https://b:2"]
        );
        assert_eq!(
            Urls::Many(vec!["x".into(), "y,z".into()]).into_list(),
            vec!["x", "y", "z"]
        );
    }
}
