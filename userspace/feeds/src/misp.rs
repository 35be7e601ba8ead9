//! MISP event JSON (`{"Event": {...}}`, a list of those, or `{"response":
//! [...]}`): `ip-dst`, `ip-dst|port`, `domain`, `hostname`, `domain|ip` (both
//! the name and the address) and `url` (its host) attributes with `to_ids`
//! set, at the event level and inside objects; deleted attributes are skipped.

use c2wall_model::{Protocol, Target};
use serde_json::Value;

use crate::{text, Collector, FeedEntry, FeedError, Location, Parsed};

fn events(doc: &Value) -> Vec<&Value> {
    match doc {
        Value::Array(items) => items.iter().flat_map(events).collect(),
        Value::Object(m) => {
            if let Some(e) = m.get("Event") {
                vec![e]
            } else if let Some(r) = m.get("response") {
                events(r)
            } else {
                vec![]
            }
        }
        _ => vec![],
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, FeedError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| FeedError::Document {
        format: "MISP",
        reason: e.to_string(),
    })?;
    let evs = events(&doc);
    if evs.is_empty() {
        return Err(FeedError::Document {
            format: "MISP",
            reason: "no `Event`".into(),
        });
    }
    let mut c = Collector::new();
    let mut n = 0;
    for ev in evs {
        let info = ev.get("info").and_then(Value::as_str).unwrap_or("");
        let event_id = ev.get("id").and_then(Value::as_str).unwrap_or("");
        let direct = ev.get("Attribute").and_then(Value::as_array);
        let in_objects = ev
            .get("Object")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| !truthy(o.get("deleted")))
            .filter_map(|o| o.get("Attribute").and_then(Value::as_array));
        for attrs in direct.into_iter().chain(in_objects) {
            for a in attrs {
                n += 1;
                attribute(a, info, event_id, Location::Object(n), &mut c);
            }
        }
    }
    Ok(c.finish())
}

fn attribute(a: &Value, info: &str, event: &str, at: Location, c: &mut Collector) {
    let kind = a.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        kind,
        "ip-dst" | "ip-dst|port" | "domain" | "hostname" | "domain|ip" | "url"
    ) || !truthy(a.get("to_ids"))
        || truthy(a.get("deleted"))
    {
        c.skip();
        return;
    }
    let value = a.get("value").and_then(Value::as_str).unwrap_or("").trim();
    let parsed: Result<Vec<(Target, Option<_>)>, String> = match kind {
        "ip-dst" => text::prefix(value).map(|p| vec![(p.into(), None)]),
        "domain" | "hostname" => text::domain(value).map(|d| vec![(d.into(), None)]),
        "url" => text::url_host(value).map(|t| vec![(t, None)]),
        "domain|ip" => match value.split_once('|') {
            Some((name, ip)) => text::domain(name)
                .and_then(|d| Ok(vec![(d.into(), None), (text::prefix(ip)?.into(), None)])),
            None => Err(format!("`{value}`: expected name|IP")),
        },
        _ => match value.rsplit_once('|') {
            Some((ip, port)) => text::prefix(ip).and_then(|p| {
                Ok(vec![(
                    p.into(),
                    text::scope(Protocol::Tcp, text::port(port)?),
                )])
            }),
            None => Err(format!("`{value}`: expected IP|port")),
        },
    };
    match parsed {
        Ok(targets) => {
            for (target, scope) in targets {
                let mut e = FeedEntry::new(target);
                e.scope = scope;
                let uuid = a.get("uuid").and_then(Value::as_str).unwrap_or("");
                e.reference = format!("misp:{event}/{uuid}");
                e.category = info.to_string();
                c.entry(e);
            }
        }
        Err(e) => c.reject(at, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_attributes_and_objects() {
        let input = r#"{"Event":{"id":"42","info":"Mirai C2 campaign","Attribute":[
            {"type":"ip-dst","value":"192.0.2.1","to_ids":true,"deleted":false,"uuid":"u1"},
            {"type":"ip-dst","value":"192.0.2.2","to_ids":false,"uuid":"u2"},
            {"type":"ip-dst","value":"192.0.2.3","to_ids":true,"deleted":true,"uuid":"u3"},
            {"type":"ip-src","value":"192.0.2.4","to_ids":true,"uuid":"u4"},
            {"type":"ip-dst|port","value":"2001:DB8::5|8443","to_ids":"1","uuid":"u5"},
            {"type":"ip-dst|port","value":"192.0.2.6|99999","to_ids":true,"uuid":"u6"}],
          "Object":[{"name":"ip-port","deleted":false,"Attribute":[
            {"type":"ip-dst","value":"198.51.100.0/24","to_ids":true,"uuid":"u7"}]},
            {"name":"ip-port","deleted":true,"Attribute":[
            {"type":"ip-dst","value":"198.51.100.9","to_ids":true,"uuid":"u8"}]}]}}"#;
        let p = parse(input.as_bytes()).unwrap();
        let got: Vec<String> = p
            .entries
            .iter()
            .map(|e| match e.scope {
                Some(s) => format!("{} {}", e.target, s.port),
                None => e.target.to_string(),
            })
            .collect();
        assert_eq!(
            got,
            ["192.0.2.1/32", "2001:db8::5/128 8443", "198.51.100.0/24"]
        );
        assert_eq!(p.entries[0].reference, "misp:42/u1");
        assert_eq!(p.entries[0].category, "Mirai C2 campaign");
        assert_eq!(p.skipped, 3);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].at, Location::Object(6));
        assert!(parse(br#"{"x":1}"#).is_err());
    }

    #[test]
    fn domain_hostname_domain_ip_and_url_attributes() {
        let input = r#"{"Event":{"id":"7","info":"C2 names","Attribute":[
            {"type":"domain","value":"Evil.Example.","to_ids":true,"uuid":"d1"},
            {"type":"hostname","value":"c2.evil.example","to_ids":true,"uuid":"d2"},
            {"type":"domain|ip","value":"cc.example|192.0.2.7","to_ids":true,"uuid":"d3"},
            {"type":"url","value":"http://gate.example:8080/p.php?x=1","to_ids":true,"uuid":"d4"},
            {"type":"url","value":"https://[2001:db8::9]/x","to_ids":true,"uuid":"d5"},
            {"type":"domain","value":"bad..example","to_ids":true,"uuid":"d6"},
            {"type":"domain","value":"off.example","to_ids":false,"uuid":"d7"}]}}"#;
        let p = parse(input.as_bytes()).unwrap();
        let got: Vec<String> = p.entries.iter().map(|e| e.target.to_string()).collect();
        assert_eq!(
            got,
            [
                "evil.example",
                "c2.evil.example",
                "cc.example",
                "192.0.2.7/32",
                "gate.example",
                "2001:db8::9/128"
            ]
        );
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].at, Location::Object(6));
        assert!(
            p.rejected[0].reason.contains("is empty"),
            "{}",
            p.rejected[0].reason
        );
        assert_eq!(p.skipped, 1);
    }
}
