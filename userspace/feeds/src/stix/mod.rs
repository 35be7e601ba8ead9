//! STIX 2.1 / 2.0 bundles and TAXII 2.1 envelopes: indicators with
//! `pattern_type` stix (2.0 has none: stix), not revoked, inside their
//! `valid_from` / `valid_until` window at `now`. Each indicator's pattern is
//! parsed ([`pattern`]); indicators that name no destination address are
//! skipped, malformed ones rejected with their object number.

pub mod pattern;

use c2wall_model::Protocol;
use serde_json::Value;

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

/// A TAXII 2.1 envelope's paging fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Page {
    pub more: bool,
    pub next: Option<String>,
}

fn document(bytes: &[u8]) -> Result<Value, FeedError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| FeedError::Document {
        format: "STIX/TAXII",
        reason: e.to_string(),
    })?;
    if !doc.get("objects").is_some_and(Value::is_array) {
        return Err(FeedError::Document {
            format: "STIX/TAXII",
            reason: "no `objects` array (neither a bundle nor an envelope)".into(),
        });
    }
    Ok(doc)
}

/// The paging fields of a TAXII envelope (a bundle has none).
pub fn page(bytes: &[u8]) -> Result<Page, FeedError> {
    let doc = document(bytes)?;
    Ok(Page {
        more: doc.get("more").and_then(Value::as_bool).unwrap_or(false),
        next: doc.get("next").and_then(Value::as_str).map(String::from),
    })
}

pub fn parse(bytes: &[u8], now: i64) -> Result<Parsed, FeedError> {
    let doc = document(bytes)?;
    let mut c = Collector::new();
    let objects = doc["objects"].as_array().expect("checked");
    for (i, o) in objects.iter().enumerate() {
        let at = Location::Object(i + 1);
        if o.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        if let Err(e) = indicator(o, now, &mut c) {
            c.reject(at, e);
        }
    }
    Ok(c.finish())
}

fn time(o: &Value, field: &str) -> Result<Option<i64>, String> {
    match o.get(field).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => text::timestamp(s)
            .map(Some)
            .map_err(|e| format!("{field}: {e}")),
    }
}

fn indicator(o: &Value, now: i64, c: &mut Collector) -> Result<(), String> {
    let id = o
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let pattern_type = o
        .get("pattern_type")
        .and_then(Value::as_str)
        .unwrap_or("stix");
    if pattern_type != "stix" || o.get("revoked").and_then(Value::as_bool) == Some(true) {
        c.skip();
        return Ok(());
    }
    let from = time(o, "valid_from")?;
    let until = time(o, "valid_until")?;
    if from.is_some_and(|f| f > now) || until.is_some_and(|u| u <= now) {
        c.skip();
        return Ok(());
    }
    let Some(p) = o.get("pattern").and_then(Value::as_str) else {
        return Err(format!("indicator {id} has no pattern"));
    };
    let alts = pattern::parse(p).map_err(|e| format!("indicator {id}: pattern `{p}`: {e}"))?;
    let category = o
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| {
            ["indicator_types", "labels"]
                .iter()
                .find_map(|k| o.get(*k)?.as_array()?.first()?.as_str())
        })
        .unwrap_or("")
        .to_string();
    let confidence = o
        .get("confidence")
        .and_then(Value::as_u64)
        .filter(|c| *c <= 100)
        .map(|c| c as u8);
    let mut named = false;
    for alt in alts.into_iter().filter(|a| !a.addrs.is_empty()) {
        named = true;
        // A port without a protocol could be either: both, still narrower
        // than the whole address.
        let protocols = if alt.protocols.is_empty() {
            vec![Protocol::Tcp, Protocol::Udp]
        } else {
            alt.protocols.clone()
        };
        for a in &alt.addrs {
            let scopes: Vec<_> = if alt.ports.is_empty() || a.domain().is_some() {
                vec![None]
            } else {
                alt.ports
                    .iter()
                    .flat_map(|p| protocols.iter().map(move |pr| text::scope(*pr, *p)))
                    .collect()
            };
            for scope in scopes {
                let mut e = FeedEntry::new(a.clone());
                e.scope = scope;
                e.reference = id.clone();
                e.category = category.clone();
                e.confidence = confidence;
                e.valid_until = until;
                c.entry(e);
            }
        }
    }
    if !named {
        c.skip();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000; // 2026-11-18

    fn ind(id: &str, pattern: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{id}","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","pattern":"{pattern}","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"{extra}}}"#
        )
    }

    #[test]
    fn bundle_filters_indicators_and_binds_ports() {
        let objs = [
            ind("1", "[ipv4-addr:value = '192.0.2.1']", r#","name":"Mirai C2","confidence":80"#),
            ind("2", "[network-traffic:dst_ref.value = '2001:db8::2' AND network-traffic:dst_port = 443 AND network-traffic:protocols[*] = 'tcp']", ""),
            ind("3", "[ipv4-addr:value = '192.0.2.3']", r#","revoked":true"#),
            ind("4", "[ipv4-addr:value = '192.0.2.4']", r#","valid_until":"2026-02-01T00:00:00Z""#),
            ind("5", "[domain-name:value = 'evil.example']", ""),
            ind("6", "[ipv4-addr:value = '192.0.2.6'", ""),
            ind("7", "[ipv4-addr:value = '192.0.2.7']", r#","pattern_type":"snort""#).replace(r#""pattern_type":"stix","#, ""),
            r#"{"type":"malware","id":"malware--1","name":"Mirai","is_family":true}"#.into(),
            ind("9", "[ipv4-addr:value = '192.0.2.9'] OR [ipv4-addr:value = '192.0.2.0/24']", r#","valid_until":"2027-01-01T00:00:00Z""#),
        ];
        let bundle = format!(
            r#"{{"type":"bundle","id":"bundle--1","objects":[{}]}}"#,
            objs.join(",")
        );
        let p = parse(bundle.as_bytes(), NOW).unwrap();
        let got: Vec<String> = p
            .entries
            .iter()
            .map(|e| match e.scope {
                Some(s) => format!("{} {} {}", e.target, s.protocol, s.port),
                None => e.target.to_string(),
            })
            .collect();
        assert_eq!(
            got,
            [
                "192.0.2.1/32",
                "2001:db8::2/128 tcp 443",
                "evil.example",
                "192.0.2.9/32",
                "192.0.2.0/24"
            ]
        );
        assert_eq!(p.entries[0].category, "Mirai C2");
        assert_eq!(p.entries[0].confidence, Some(80));
        assert_eq!(p.entries[0].reference, "indicator--1");
        assert_eq!(p.entries[3].valid_until, Some(1_798_761_600));
        assert_eq!(p.skipped, 3, "revoked, expired, other pattern type");
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].at, Location::Object(6));
    }

    #[test]
    fn stix_20_and_taxii_envelopes() {
        // 2.0: no pattern_type, labels for the category.
        let v20 = r#"{"type":"bundle","id":"bundle--2","spec_version":"2.0","objects":[
            {"type":"indicator","id":"indicator--a","labels":["malicious-activity"],"pattern":"[ipv4-addr:value = '198.51.100.7']","valid_from":"2026-01-01T00:00:00Z"}]}"#;
        let p = parse(v20.as_bytes(), NOW).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].category, "malicious-activity");
        let env = r#"{"more":true,"next":"page-2","objects":[]}"#;
        assert_eq!(
            page(env.as_bytes()).unwrap(),
            Page {
                more: true,
                next: Some("page-2".into())
            }
        );
        assert!(parse(b"{\"type\":\"bundle\"}", NOW).is_err());
        assert!(parse(b"not json", NOW).is_err());
    }
}
