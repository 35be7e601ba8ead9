//! `c2wall feed ...`: check a feed file, import it, list the coordinator's feeds.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{anyhow, Context};
use c2wall_feeds::{
    format::ALL,
    policy::{Guard, Policy},
    Format, Parsed,
};
use c2wall_model::{wire::entry_to_wire, Action, Family};
use c2wall_proto::v1 as pb;
use clap::{Args, Subcommand};
use serde_json::json;

#[derive(Subcommand)]
pub enum FeedCommand {
    /// The formats `--format` takes, and how often each source may be pulled.
    Formats,
    /// Parse a feed file and summarise it; publishes nothing. Exit 1 if lines
    /// were rejected or the file looks truncated.
    Check {
        #[arg(long, short = 'f')]
        format: Format,
        file: PathBuf,
    },
    /// Publish a feed file as the complete set of one source: entries the
    /// file no longer lists are withdrawn for that source only.
    Import(ImportArgs),
    /// The feeds the coordinator pulls and how each is doing.
    List,
}

#[derive(Args)]
pub struct ImportArgs {
    #[arg(long, short = 'f')]
    format: Format,
    /// The source these entries replace (e.g. the feed's name).
    #[arg(long)]
    source: String,
    file: PathBuf,
    #[arg(long, value_parser = ["monitor", "drop"], default_value = "monitor")]
    action: String,
    /// Category for entries the feed does not categorise.
    #[arg(long, default_value = "")]
    category: String,
    /// Entries expire this long after the import (seconds; 0 = never).
    #[arg(long, default_value_t = 0)]
    ttl: i64,
    /// Shorter IPv4 prefixes are left out.
    #[arg(long, default_value_t = 16)]
    min_prefix_v4: u8,
    /// Shorter IPv6 prefixes are left out.
    #[arg(long, default_value_t = 32)]
    min_prefix_v6: u8,
    /// Leave out entries the feed rates below this (0-100).
    #[arg(long, default_value_t = 0)]
    min_confidence: u8,
    /// Block whole addresses instead of the ports the feed gives.
    #[arg(long)]
    no_ports: bool,
    /// Import even if the file looks truncated or many lines were rejected.
    #[arg(long)]
    force: bool,
    #[arg(long, default_value = "")]
    reason: String,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_file(format: Format, file: &PathBuf) -> anyhow::Result<Parsed> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    format
        .parse(&bytes, now())
        .map_err(|e| anyhow!("{}: {e}", file.display()))
}

pub fn formats(as_json: bool) {
    if as_json {
        let list: Vec<_> = ALL
            .iter()
            .map(|f| json!({"format": f.name(), "description": f.describe(), "min_interval_seconds": f.min_interval().as_secs()}))
            .collect();
        println!("{}", json!({ "formats": list }));
        return;
    }
    crate::out!("{:<16} {:>9}  DESCRIPTION", "FORMAT", "MIN PULL");
    for f in ALL {
        crate::out!(
            "{:<16} {:>8}s  {}",
            f.name(),
            f.min_interval().as_secs(),
            f.describe()
        );
    }
}

/// Prints the summary; returns whether the file is clean.
pub fn check(format: Format, file: &PathBuf, as_json: bool) -> anyhow::Result<bool> {
    let p = parse_file(format, file)?;
    let mut by_len: BTreeMap<(Family, u8), usize> = BTreeMap::new();
    let mut with_port = 0;
    let (mut domains, mut wildcards) = (0, 0);
    for e in &p.entries {
        match &e.target {
            c2wall_model::Target::Prefix(pfx) => {
                *by_len.entry((pfx.family(), pfx.len())).or_default() += 1;
            }
            c2wall_model::Target::Domain(d) => {
                domains += 1;
                wildcards += d.subtree as usize;
            }
        }
        with_port += e.scope.is_some() as usize;
    }
    let clean = p.rejected.is_empty() && p.truncated.is_none();
    if as_json {
        let lens: Vec<_> = by_len
            .iter()
            .map(|((f, l), n)| json!({"family": f.name(), "prefix_length": l, "entries": n}))
            .collect();
        let rejected: Vec<_> = p
            .rejected
            .iter()
            .map(|r| json!({"at": r.at.to_string(), "reason": r.reason}))
            .collect();
        println!(
            "{}",
            json!({"format": format.name(), "entries": p.entries.len(), "with_port": with_port,
                "domains": domains, "wildcard_domains": wildcards,
                "duplicates": p.duplicates, "skipped": p.skipped, "truncated": p.truncated,
                "by_prefix_length": lens, "rejected": rejected})
        );
        return Ok(clean);
    }
    crate::out!(
        "{}: {} entries ({} with a port), {} duplicates, {} skipped, {} rejected",
        file.display(),
        p.entries.len(),
        with_port,
        p.duplicates,
        p.skipped,
        p.rejected.len()
    );
    for ((f, l), n) in &by_len {
        crate::out!("  {:<5} /{:<3} {n}", f.name(), l);
    }
    if domains > 0 {
        crate::out!("  domain       {domains} ({wildcards} with everything below them)");
    }
    if let Some(t) = &p.truncated {
        crate::out!("TRUNCATED: {t}");
    }
    const SHOWN: usize = 50;
    for r in p.rejected.iter().take(SHOWN) {
        crate::out!("  rejected {r}");
    }
    if p.rejected.len() > SHOWN {
        crate::out!("  ... and {} more rejected", p.rejected.len() - SHOWN);
    }
    Ok(clean)
}

pub async fn import(
    client: &mut crate::Client,
    a: ImportArgs,
    actor: &str,
    as_json: bool,
) -> anyhow::Result<Result<pb::ImportResponse, tonic::Status>> {
    let parsed = parse_file(a.format, &a.file)?;
    let policy = Policy {
        action: if a.action == "drop" {
            Action::Drop
        } else {
            Action::Monitor
        },
        category: a.category.clone(),
        min_len_v4: a.min_prefix_v4,
        min_len_v6: a.min_prefix_v6,
        min_confidence: a.min_confidence,
        ports: !a.no_ports,
        ..Default::default()
    };
    let (records, dropped) = policy.records(&parsed);
    if let Some(why) = Guard::default().refuse(&parsed, records.len(), 0) {
        if !a.force {
            return Err(anyhow!(
                "{}: not imported: {why} (check it with `c2wall feed check`; --force imports anyway)",
                a.file.display()
            ));
        }
        eprintln!("c2wall: importing despite: {why}");
    }
    if !as_json && dropped.too_short + dropped.low_confidence > 0 {
        eprintln!(
            "left out: {} prefixes shorter than /{} or /{}, {} below confidence {}",
            dropped.too_short,
            a.min_prefix_v4,
            a.min_prefix_v6,
            dropped.low_confidence,
            a.min_confidence
        );
    }
    let total = records.len() as u64;
    let bar = if as_json || total < 50_000 {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({eta})")
                .expect("template")
                .progress_chars("=> "),
        )
    };
    bar.set_message(format!("importing {}", a.source));
    let (source, reason, ttl) = (a.source, a.reason, a.ttl);
    let b = bar.clone();
    let chunks: Vec<pb::ImportChunk> = records
        .chunks(8192)
        .enumerate()
        .map(|(i, rs)| pb::ImportChunk {
            source: if i == 0 {
                source.clone()
            } else {
                String::new()
            },
            reason: reason.clone(),
            ttl_seconds: ttl,
            entries: rs
                .iter()
                .map(|r| pb::Entry {
                    category: r.category.clone(),
                    reference: r.reference.clone(),
                    confidence: r.confidence as u32,
                    valid_until: r.valid_until.unwrap_or(0),
                    ..entry_to_wire(&r.entry)
                })
                .collect(),
            end: false,
        })
        .collect();
    // An empty file still replaces the source's set (with nothing).
    let mut chunks = if chunks.is_empty() {
        vec![pb::ImportChunk {
            source,
            reason,
            ttl_seconds: ttl,
            entries: vec![],
            end: false,
        }]
    } else {
        chunks
    };
    // Only a stream that reaches its marked end is committed.
    if let Some(last) = chunks.last_mut() {
        last.end = true;
    }
    let stream = tokio_stream::iter(chunks.into_iter().inspect(move |c| {
        b.inc(c.entries.len() as u64);
    }));
    let r = crate::with_actor(actor, stream);
    let out = client.import(r).await.map(|r| r.into_inner());
    bar.finish_and_clear();
    Ok(out)
}

pub fn imported(r: &pb::ImportResponse, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"version": r.version, "added": r.added, "updated": r.updated,
                "withdrawn": r.withdrawn, "unchanged": r.unchanged, "refused": r.refused,
                "refusals": r.refusals, "pending_id": r.pending_id})
        );
        return;
    }
    for why in &r.refusals {
        eprintln!("refused by the guards: {why}");
    }
    if r.refused as usize > r.refusals.len() {
        eprintln!("... {} refused in all", r.refused);
    }
    if r.pending_id != 0 {
        crate::out!(
            "held by the change breaker as pending #{} (an admin confirms with `c2wall pending confirm {}`)",
            r.pending_id, r.pending_id
        );
    } else if r.version == 0 {
        crate::out!("no change ({} entries unchanged)", r.unchanged);
    } else {
        crate::out!(
            "version {}: {} added, {} updated, {} withdrawn, {} unchanged",
            r.version,
            r.added,
            r.updated,
            r.withdrawn,
            r.unchanged
        );
    }
}

pub fn list(r: &pb::FeedsResponse, as_json: bool) {
    let ts = crate::output::ts;
    if as_json {
        let list: Vec<_> = r
            .feeds
            .iter()
            .map(|f| {
                json!({"name": f.name, "format": f.format, "location": f.location,
                "interval_seconds": f.interval_seconds, "last_attempt": f.last_attempt,
                "last_success": f.last_success, "entries": f.entries, "rejected": f.rejected,
                "failures": f.failures, "last_error": f.last_error, "last_version": f.last_version,
                "upstream_version": f.upstream_version, "upstream_latest": f.upstream_latest,
                "vetoed": f.vetoed})
            })
            .collect();
        println!("{}", json!({ "feeds": list }));
        return;
    }
    if r.feeds.is_empty() {
        crate::out!("no feeds configured (add [[feed]] tables to the coordinator's config)");
        return;
    }
    crate::out!(
        "{:<20} {:<15} {:>8} {:>8} {:>8} {:<20} ERROR",
        "FEED",
        "FORMAT",
        "ENTRIES",
        "REJECTED",
        "FAILURES",
        "LAST SUCCESS"
    );
    for f in &r.feeds {
        crate::out!(
            "{:<20} {:<15} {:>8} {:>8} {:>8} {:<20} {}",
            f.name,
            f.format,
            f.entries,
            f.rejected,
            f.failures,
            ts(f.last_success),
            f.last_error
        );
    }
    // Upstream coordinators: which of their versions this one keeps, and
    // what its own policy keeps out.
    for f in r.feeds.iter().filter(|f| f.format == "upstream") {
        crate::out!(
            "{}: upstream version {} verified and kept (latest announced {}), {} entries \
             kept out here (c2wall explain ADDRESS says why), from {}",
            f.name,
            f.upstream_version,
            f.upstream_latest,
            f.vetoed,
            f.location
        );
    }
}
