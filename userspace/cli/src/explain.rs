//! `c2wall explain ADDRESS|NAME`: every record covering an address or a
//! name, where each
//! came from (through upstream coordinators, hop by hop), and upstream
//! entries this coordinator keeps out.

use c2wall_proto::v1 as pb;
use serde_json::json;

use crate::output::{action, direction, entry_json, key};

pub fn print(addr: &str, r: &pb::ExplainResponse, as_json: bool) {
    if as_json {
        let vetoed: Vec<_> = r
            .vetoed
            .iter()
            .map(|v| json!({"entry": v.entry.as_ref().map(entry_json), "reason": v.reason}))
            .collect();
        println!(
            "{}",
            json!({"address": addr, "version": r.version, "matches": r.matches.iter().map(entry_json).collect::<Vec<_>>(), "vetoed": vetoed})
        );
        return;
    }
    if r.matches.is_empty() {
        crate::out!("{addr}: not listed (version {})", r.version);
    } else if addr.parse::<std::net::IpAddr>().is_err() {
        crate::out!(
            "{addr} is covered by (most specific first; resolvers answer it as the first says):"
        );
    } else {
        crate::out!("{addr} is covered by (most specific first; the first whose port and direction fit the packet decides):");
    }
    for e in &r.matches {
        crate::out!(
            "  {:<40} {:<8} {:<5} source {} {}",
            key(e),
            action(e),
            direction(e),
            e.source,
            e.reference
        );
        chain(e);
    }
    for v in &r.vetoed {
        let Some(e) = &v.entry else { continue };
        crate::out!(
            "  {:<40} not enforced here: {} lists it as {}, but {}",
            key(e),
            e.chain
                .last()
                .map(|h| format!("upstream {}", h.upstream))
                .unwrap_or_else(|| "an upstream".into()),
            action(e),
            v.reason
        );
        chain(e);
    }
}

/// The hops an upstream record came through, the original publisher first.
fn chain(e: &pb::Entry) {
    for h in &e.chain {
        crate::out!(
            "      via upstream {} (its version {}): source {}, by {} at {}",
            h.upstream,
            h.version,
            h.source,
            h.created_by,
            crate::text::ts(h.created_at)
        );
    }
}
