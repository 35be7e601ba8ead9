//! What the daemon exposes about itself: kernel counters per interface,
//! apply outcomes as metrics, the attach state, the drop-event ring buffer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use c2wall_agent::follow::table::Followed;
use c2wall_agent::sightings::Sightings;
use c2wall_agent::{
    dataplane::Dataplane,
    engine::Engine,
    kernel::KernelMaps,
    loader,
    metrics::{CounterReader, Metrics},
    paths::Paths,
    AgentError,
};
use c2wall_common::*;

pub fn counter_reader(
    paths: &Paths,
    names: Arc<Mutex<HashMap<u32, String>>>,
) -> Result<CounterReader> {
    let maps = Mutex::new(KernelMaps::from_pins(&paths.maps_dir())?);
    Ok(Arc::new(move || {
        let by_slot = maps.lock().expect("lock").counters_by_slot()?;
        let names = names.lock().expect("lock");
        Ok(by_slot
            .into_iter()
            .enumerate()
            .filter_map(|(slot, values)| {
                let name = names.get(&(slot as u32)).cloned();
                // Slots of interfaces no longer configured still count.
                match name {
                    Some(n) => Some((n, values)),
                    None if values.iter().any(|v| *v != 0) => Some(("other".into(), values)),
                    None => None,
                }
            })
            .collect())
    }))
}

/// Exports the outcome of an apply and logs it.
pub fn record(
    engine: &Engine<KernelMaps>,
    result: Result<c2wall_agent::engine::SyncReport, AgentError>,
    metrics: &Metrics,
    kind: &str,
) -> Result<(), AgentError> {
    match result {
        Ok(r) => {
            metrics
                .apply_duration
                .with_label_values(&[kind])
                .observe(r.stats.elapsed.as_secs_f64());
            metrics.rejected_lines.set(r.rejected as i64);
            let kind = if r.stats.reload { "reload" } else { "in_place" };
            metrics.applies.with_label_values(&[kind]).inc();
            metrics
                .last_apply_duration
                .set(r.stats.elapsed.as_secs_f64());
            metrics.last_apply_timestamp.set(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            );
            metrics.entries.reset();
            for ((f, a), n) in &r.by_kind {
                metrics
                    .entries
                    .with_label_values(&[f.name(), &a.to_string()])
                    .set(*n as i64);
            }
            metrics.allowlist_prefixes.set(r.allow as i64);
            let (v4, v6, ports) = engine.applier.slot_counts();
            let (c4, c6, cp) = engine.applier.dataplane().capacity();
            for (name, used, cap) in [
                (MAP_NODES_V4, v4, c4),
                (MAP_NODES_V6, v6, c6),
                (MAP_PORTS, ports, cp),
            ] {
                metrics.slots.with_label_values(&[name]).set(used as i64);
                metrics
                    .slot_capacity
                    .with_label_values(&[name])
                    .set(cap as i64);
            }
            tracing::info!(
                entries = r.entries,
                allowlist = r.allow,
                rejected = r.rejected,
                kind,
                writes = r.stats.writes,
                deletes = r.stats.deletes,
                ms = r.stats.elapsed.as_millis() as u64,
                "blocklist applied"
            );
            Ok(())
        }
        Err(e) => {
            metrics.apply_errors.inc();
            Err(e)
        }
    }
}

/// Whether the program is still attached to `iface`: its link pin exists
/// (`c2wall-agent detach` removes it) and so does the interface.
pub fn link_pinned(paths: &Paths, iface: &str) -> bool {
    c2wall_agent::attach::is_held(paths, iface) && loader::interface_index(iface).is_ok()
}

/// The most hit ids named for the top 20: a few more, as one whose entry
/// was withdrawn since the count was read has no name.
const HIT_CANDIDATES: usize = 40;

/// `c2wall-agent top`: entries by hits and the latest sampled drops, as JSON.
/// Entries followed from DNS answers carry `via: "dns:NAME"`.
pub(crate) fn top_json(
    engine: &Engine<KernelMaps>,
    followed: &Followed,
    sightings: &Mutex<Sightings>,
) -> String {
    let via = |id: &c2wall_model::Identity| followed.source_of(id).map(|n| format!("dns:{n}"));
    // The most hit listed entries: counts first, then one naming pass for
    // these and the recent sightings.
    let mut counts: Vec<(u64, u32)> = engine
        .applier
        .dataplane()
        .hits()
        .unwrap_or_default()
        .into_iter()
        .map(|(id, n)| (n, id))
        .collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let sightings = sightings.lock().expect("lock");
    let wanted = counts.iter().take(HIT_CANDIDATES).map(|(_, id)| *id);
    let wanted = wanted.chain(sightings.recent().map(|r| r.key.entry_id));
    let names = engine.identities(wanted.collect::<Vec<_>>());
    let mut hits: Vec<(u64, String, Option<String>)> = counts
        .iter()
        .take(HIT_CANDIDATES)
        .filter_map(|(n, id)| {
            let ident = names.get(id)?;
            Some((*n, ident.to_string(), via(ident)))
        })
        .collect();
    hits.sort_by(|a, b| b.cmp(a));
    hits.truncate(20);
    let recent: Vec<serde_json::Value> = sightings
        .recent()
        .map(|r| {
            let ident = names.get(&r.key.entry_id);
            serde_json::json!({
                "at": r.at,
                "subscriber": r.key.subscriber,
                "entry": ident.map(|i| i.to_string()),
                "via": ident.and_then(via),
                "cc": r.cc.to_string(),
                "protocol": r.key.protocol,
                "cc_port": r.key.cc_port,
                "direction": if r.key.direction as u32 == DIR_TO_CC { "to_cc" } else { "from_cc" },
                "dropped": r.key.dropped,
            })
        })
        .collect();
    let top: Vec<serde_json::Value> = hits
        .into_iter()
        .map(|(n, e, v)| serde_json::json!({"entry": e, "hits": n, "via": v}))
        .collect();
    serde_json::json!({"top": top, "recent": recent}).to_string()
}
