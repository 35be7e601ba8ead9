//! Human tables and --json output.

use c2wall_proto::v1 as pb;
use serde_json::{json, Value};

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub use crate::text::ts;

pub(crate) fn key(e: &pb::Entry) -> String {
    let k = e.key.clone().unwrap_or_default();
    if !k.domain.is_empty() {
        return k.domain;
    }
    match pb::Protocol::try_from(k.protocol) {
        Ok(pb::Protocol::Tcp) => format!("{} tcp {}", k.prefix, k.port),
        Ok(pb::Protocol::Udp) => format!("{} udp {}", k.prefix, k.port),
        _ => k.prefix,
    }
}

pub(crate) fn action(e: &pb::Entry) -> &'static str {
    if e.action == pb::Action::Monitor as i32 {
        "monitor"
    } else {
        "drop"
    }
}

pub(crate) fn direction(e: &pb::Entry) -> &'static str {
    match pb::Direction::try_from(e.direction) {
        Ok(pb::Direction::To) => "to",
        Ok(pb::Direction::From) => "from",
        _ => "both",
    }
}

/// One entry as `list --json` prints it: a prefix entry has `prefix`,
/// `protocol` and `port`; a domain entry has `domain` instead.
pub(crate) fn entry_json(e: &pb::Entry) -> Value {
    let k = e.key.clone().unwrap_or_default();
    let mut v = entry_json_fields(e);
    if let Value::Object(m) = &mut v {
        if k.domain.is_empty() {
            m.insert("prefix".into(), Value::from(k.prefix));
            m.insert(
                "protocol".into(),
                match pb::Protocol::try_from(k.protocol) {
                    Ok(pb::Protocol::Tcp) => Value::from("tcp"),
                    Ok(pb::Protocol::Udp) => Value::from("udp"),
                    _ => Value::Null,
                },
            );
            m.insert(
                "port".into(),
                if k.port == 0 {
                    Value::Null
                } else {
                    Value::from(k.port)
                },
            );
        } else {
            m.insert("domain".into(), Value::from(k.domain));
        }
    }
    v
}

fn entry_json_fields(e: &pb::Entry) -> Value {
    json!({
        "action": action(e),
        "direction": direction(e),
        "source": e.source,
        "category": e.category,
        "reference": e.reference,
        "confidence": e.confidence,
        "valid_from": e.valid_from,
        "valid_until": if e.valid_until == 0 { Value::Null } else { Value::from(e.valid_until) },
        "created_by": e.created_by,
        "created_at": e.created_at,
        "promote_at": if e.promote_at == 0 { Value::Null } else { Value::from(e.promote_at) },
        "chain": e.chain.iter().map(|h| json!({"upstream": h.upstream, "source": h.source, "created_by": h.created_by, "created_at": h.created_at, "version": h.version})).collect::<Vec<_>>(),
    })
}

pub fn published(r: &pb::PublishResponse, as_json: bool) {
    if r.pending_id != 0 {
        if as_json {
            println!(
                "{}",
                json!({"version": 0, "pending_id": r.pending_id, "summary": r.pending_summary})
            );
        } else {
            crate::out!(
                "held by the change breaker as pending #{}: {} (an admin confirms with \
                 `c2wall pending confirm {}`)",
                r.pending_id,
                r.pending_summary,
                r.pending_id
            );
        }
        return;
    }
    if as_json {
        println!(
            "{}",
            json!({"version": r.version, "digest": hex(&r.digest), "upserted": r.upserted, "withdrawn": r.withdrawn})
        );
    } else {
        crate::out!(
            "version {} ({} upserted, {} withdrawn), digest {}",
            r.version,
            r.upserted,
            r.withdrawn,
            hex(&r.digest)
        );
    }
}

pub fn entries(es: &[pb::Entry], version: u64, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"version": version, "entries": es.iter().map(entry_json).collect::<Vec<_>>()})
        );
        return;
    }
    crate::out!(
        "{:<40} {:<8} {:<5} {:<20} {:<12} {:<20}",
        "ENTRY",
        "ACTION",
        "DIR",
        "SOURCE",
        "CATEGORY",
        "EXPIRES"
    );
    for e in es {
        crate::out!(
            "{:<40} {:<8} {:<5} {:<20} {:<12} {:<20}",
            key(e),
            action(e),
            direction(e),
            e.source,
            e.category,
            ts(e.valid_until)
        );
    }
    crate::out!("{} records at version {version}", es.len());
}

pub fn get(r: &pb::GetResponse, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({
                "version": r.version,
                "sampled_would_drops": r.sampled_would_drops,
                "effective": r.effective.as_ref().map(entry_json),
                "records": r.records.iter().map(entry_json).collect::<Vec<_>>(),
            })
        );
        return;
    }
    match &r.effective {
        Some(e) => crate::out!(
            "{}: agents enforce {} {} (version {})",
            key(e),
            action(e),
            direction(e),
            r.version
        ),
        None => crate::out!("not enforced: no record is active (version {})", r.version),
    }
    for e in r.records.iter().filter(|e| e.promote_at != 0) {
        crate::out!(
            "{} from {} is monitor-only until {}: then drop, unless someone objects (c2wall object)",
            key(e),
            e.source,
            ts(e.promote_at)
        );
    }
    if r.sampled_would_drops > 0 {
        crate::out!(
            "agents sampled {} would-drop packets for it",
            r.sampled_would_drops
        );
    }
    crate::out!(
        "{:<20} {:<8} {:<5} {:<12} {:<10} {:<4} {:<20} {:<20}",
        "SOURCE",
        "ACTION",
        "DIR",
        "CATEGORY",
        "REFERENCE",
        "CONF",
        "VALID UNTIL",
        "CREATED BY"
    );
    for e in &r.records {
        crate::out!(
            "{:<20} {:<8} {:<5} {:<12} {:<10} {:<4} {:<20} {:<20}",
            e.source,
            action(e),
            direction(e),
            e.category,
            e.reference,
            e.confidence,
            ts(e.valid_until),
            format!("{} {}", e.created_by, ts(e.created_at))
        );
    }
}

pub fn history(vs: &[pb::VersionInfo], as_json: bool) {
    if as_json {
        let list: Vec<Value> = vs
            .iter()
            .map(|v| json!({"version": v.version, "digest": hex(&v.digest), "created_at": v.created_at, "actor": v.actor, "reason": v.reason, "upserts": v.upserts, "removals": v.removals}))
            .collect();
        println!("{}", json!({"versions": list}));
        return;
    }
    crate::out!(
        "{:>8} {:<20} {:<16} {:>7} {:>7}  REASON",
        "VERSION",
        "WHEN",
        "ACTOR",
        "UPSERTS",
        "REMOVED"
    );
    for v in vs {
        crate::out!(
            "{:>8} {:<20} {:<16} {:>7} {:>7}  {}",
            v.version,
            ts(v.created_at),
            v.actor,
            v.upserts,
            v.removals,
            v.reason
        );
    }
}

pub fn agents(r: &pb::AgentsResponse, as_json: bool) {
    if as_json {
        let list: Vec<Value> = r
            .agents
            .iter()
            .map(|a| {
                let s = a.status.clone().unwrap_or_default();
                let kind = c2wall_model::SubscriberKind::from_wire(s.kind);
                json!({"agent_id": s.agent_id, "kind": kind.as_str(), "vetoed": s.vetoed, "peers": s.peers, "applied_version": s.applied_version, "connected": a.connected, "last_seen": a.last_seen, "mode": s.mode, "interfaces": s.interfaces, "entries": s.entries, "dropped_packets": s.dropped_packets, "seconds_since_contact": s.seconds_since_contact, "lineage": hex(&s.lineage), "sync_error": s.sync_error, "replica": s.coordinator, "failovers": s.failovers})
            })
            .collect();
        println!(
            "{}",
            json!({"latest_version": r.latest_version, "lineage": r.lineage, "agents": list})
        );
        return;
    }
    crate::out!(
        "{:<24} {:<10} {:>8} {:>6} {:<9} {:<8} {:<20} REPLICA",
        "AGENT",
        "KIND",
        "VERSION",
        "BEHIND",
        "CONNECTED",
        "MODE",
        "LAST SEEN"
    );
    for a in &r.agents {
        let s = a.status.clone().unwrap_or_default();
        crate::out!(
            "{:<24} {:<10} {:>8} {:>6} {:<9} {:<8} {:<20} {}",
            s.agent_id,
            c2wall_model::SubscriberKind::from_wire(s.kind),
            s.applied_version,
            r.latest_version.saturating_sub(s.applied_version),
            if a.connected { "yes" } else { "no" },
            s.mode,
            ts(a.last_seen),
            s.coordinator
        );
    }
    for a in &r.agents {
        let s = a.status.clone().unwrap_or_default();
        if !s.peers.is_empty() {
            crate::out!("{}: BGP peers {}", s.agent_id, s.peers.join(", "));
        }
        if !s.sync_error.is_empty() {
            crate::out!(
                "{}: cannot apply the latest version: {}",
                s.agent_id,
                s.sync_error
            );
        }
        if !s.lineage.is_empty() && hex(&s.lineage) != r.lineage {
            crate::out!(
                "{}: holds lineage {} (this store's is {}): see `c2wall lineage --help`",
                s.agent_id,
                hex(&s.lineage),
                r.lineage
            );
        }
    }
    crate::out!("latest version {}, lineage {}", r.latest_version, r.lineage);
}

pub fn sightings(r: &pb::SightingsResponse, as_json: bool) {
    let rows: Vec<(&str, &pb::Sighting)> = r
        .sightings
        .iter()
        .filter_map(|a| Some((a.agent_id.as_str(), a.sighting.as_ref()?)))
        .collect();
    let entry = |s: &pb::Sighting| {
        let k = s.entry.clone().unwrap_or_default();
        match pb::Protocol::try_from(k.protocol) {
            Ok(pb::Protocol::Tcp) => format!("{} tcp {}", k.prefix, k.port),
            Ok(pb::Protocol::Udp) => format!("{} udp {}", k.prefix, k.port),
            _ => k.prefix,
        }
    };
    let dir = |s: &pb::Sighting| {
        if s.direction == pb::Direction::From as i32 {
            "from_cc"
        } else {
            "to_cc"
        }
    };
    if as_json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(agent, s)| {
                json!({"agent_id": agent, "subscriber": s.subscriber, "entry": entry(s),
                "ip_protocol": s.ip_protocol, "cc_port": s.cc_port, "direction": dir(s),
                "dropped": s.dropped, "first_seen": s.first_seen, "last_seen": s.last_seen,
                "count": s.count})
            })
            .collect();
        println!("{}", json!({ "sightings": list }));
        return;
    }
    crate::out!(
        "{:<16} {:<30} {:<28} {:>5} {:>6} {:<8} {:>7} {:<20}",
        "AGENT",
        "SUBSCRIBER",
        "ENTRY",
        "PROTO",
        "PORT",
        "DIR",
        "COUNT",
        "LAST SEEN"
    );
    for (agent, s) in &rows {
        crate::out!(
            "{:<16} {:<30} {:<28} {:>5} {:>6} {:<8} {:>7} {:<20}",
            agent,
            s.subscriber,
            entry(s),
            s.ip_protocol,
            s.cc_port,
            dir(s),
            s.count,
            ts(s.last_seen)
        );
    }
    crate::out!("{} sightings", rows.len());
}

pub fn lineage(r: &pb::LineageResponse, as_json: bool) {
    let moved = r.moved.as_ref().map(|m| {
        json!({"from_lineage": hex(&m.from_lineage), "up_to_version": m.from_version,
            "actor": m.actor, "at": m.at, "reason": m.reason})
    });
    if as_json {
        println!("{}", json!({"lineage": r.lineage, "moved": moved}));
        return;
    }
    crate::out!("lineage {}", r.lineage);
    if let Some(m) = &r.moved {
        crate::out!(
            "moved from lineage {} (up to version {}) by {} at {}: {}",
            hex(&m.from_lineage),
            m.from_version,
            m.actor,
            ts(m.at),
            m.reason
        );
    }
}
