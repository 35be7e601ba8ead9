//! Records as every store keeps them: encoded c2wall.v1 entries under a
//! text key of identity and source.

use c2wall_model::Record;
use c2wall_proto::v1 as pb;
use prost::Message;

use crate::error::CoordError;

pub(crate) fn record_key(r: &Record) -> String {
    format!("{}|{}", r.identity(), r.source)
}

pub(crate) fn encode(r: &Record) -> Vec<u8> {
    pb::Entry::from(r).encode_to_vec()
}

pub(crate) fn decode(b: &[u8]) -> Result<Record, CoordError> {
    let e = pb::Entry::decode(b).map_err(|e| CoordError::Corrupt(e.to_string()))?;
    Record::try_from(&e).map_err(|e| CoordError::Corrupt(e.to_string()))
}

/// The fleet's row in `modes` is keyed `*` (no agent id is `*`: the kill
/// switch refuses it).
pub(crate) fn scope_key(scope: &c2wall_model::Scope) -> &str {
    match scope {
        c2wall_model::Scope::Fleet => "*",
        c2wall_model::Scope::Agent(a) => a,
    }
}

pub(crate) fn scope_of(key: String) -> c2wall_model::Scope {
    if key == "*" {
        c2wall_model::Scope::Fleet
    } else {
        c2wall_model::Scope::Agent(key)
    }
}

/// The change log from its rows (version, before, after), newest version
/// first as both stores read them: one list of record changes per version.
pub(crate) fn change_log(
    rows: impl IntoIterator<Item = (i64, Option<Vec<u8>>, Option<Vec<u8>>)>,
) -> Result<super::ChangeLog, CoordError> {
    let mut out: super::ChangeLog = Vec::new();
    for (v, before, after) in rows {
        let before = before.map(|b| decode(&b)).transpose()?;
        let ch = match after {
            Some(a) => super::RecordChange::Put {
                before,
                after: decode(&a)?,
            },
            None => super::RecordChange::Delete {
                before: before
                    .ok_or_else(|| CoordError::Corrupt("delete without before".into()))?,
            },
        };
        match out.last_mut() {
            Some((lv, list)) if *lv == v as u64 => list.push(ch),
            _ => out.push((v as u64, vec![ch])),
        }
    }
    Ok(out)
}
