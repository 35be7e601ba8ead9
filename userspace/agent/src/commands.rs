//! The one-shot subcommands: detach, check, status.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use c2wall_agent::{
    dataplane::Dataplane,
    ids::Ids,
    kernel::KernelMaps,
    loader,
    paths::{Paths, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR},
    source::{file::FileSource, BlocklistSource},
};
use c2wall_common::*;

pub fn detach(pin_dir: Option<PathBuf>, config: Option<PathBuf>) -> Result<std::process::ExitCode> {
    let pin_dir = match (pin_dir, config) {
        (Some(p), _) => p,
        (None, Some(c)) => {
            c2wall_agent::config::pin_dir_of(&c)?.unwrap_or_else(|| DEFAULT_PIN_DIR.into())
        }
        (None, None) => DEFAULT_PIN_DIR.into(),
    };
    let paths = Paths {
        pin_dir,
        state_dir: DEFAULT_STATE_DIR.into(),
    };
    let gone = loader::detach_all(&paths)?;
    println!(
        "detached from {} interface(s){}{}; pins removed from {}",
        gone.len(),
        if gone.is_empty() { "" } else { ": " },
        gone.join(", "),
        paths.pin_dir.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn mount_bpffs() -> Result<std::process::ExitCode> {
    if loader::mount_bpffs()? {
        println!("mounted bpffs on {}", c2wall_agent::paths::BPFFS_ROOT);
    } else {
        println!(
            "bpffs already mounted on {}",
            c2wall_agent::paths::BPFFS_ROOT
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn check(
    blocklists: Vec<PathBuf>,
    allowlist: Option<PathBuf>,
) -> Result<std::process::ExitCode> {
    let snap = FileSource {
        blocklists,
        allowlist,
    }
    .snapshot()?;
    for r in &snap.rejected {
        println!("rejected {r}");
    }
    let v4 = snap
        .entries
        .iter()
        .filter(|e| {
            e.listed_prefix()
                .is_some_and(|p| p.family() == c2wall_model::Family::V4)
        })
        .count();
    let scoped = snap.entries.iter().filter(|e| e.scope.is_some()).count();
    let domains = snap
        .entries
        .iter()
        .filter(|e| e.listed_prefix().is_none())
        .count();
    println!(
        "{} entries ({} IPv4, {} IPv6, {} port-scoped), {} protected prefixes, {} rejected lines",
        snap.entries.len() - domains,
        v4,
        snap.entries.len() - domains - v4,
        scoped,
        snap.allow.len(),
        snap.rejected.len()
    );
    if domains > 0 {
        println!(
            "{domains} domain entries: the agent does not enforce names (the coordinator \
             serves them to the ISP's resolvers as RPZ); they are ignored here"
        );
    }
    Ok(if snap.rejected.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

pub fn status(pin_dir: PathBuf, state_dir: PathBuf) -> Result<std::process::ExitCode> {
    let paths = Paths { pin_dir, state_dir };
    let maps = KernelMaps::from_pins(&paths.maps_dir()).with_context(|| {
        format!(
            "no c2wall maps pinned under {} (is the agent running?)",
            paths.maps_dir().display()
        )
    })?;
    let cfg = maps.read_config()?;
    let mode = match cfg.mode {
        MODE_ENFORCE => "enforce",
        MODE_MONITOR => "monitor",
        _ => "off",
    };
    let links: Vec<String> = std::fs::read_dir(paths.links_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    println!("mode: {mode}");
    println!("interfaces: {}", links.join(", "));
    println!("active rule set: {}", cfg.active_set);
    let c = maps.counters()?;
    let sum = |v: u32, d: u32, unit: u32| -> u64 {
        (0..2)
            .map(|f| c[verdict_counter(v, d, f, unit) as usize])
            .sum()
    };
    println!("{:<14} {:>14} {:>16}", "verdict", "packets", "bytes");
    for (name, v, dirs) in [
        ("pass", VERDICT_PASS, &[DIR_TO_CC][..]),
        ("drop", VERDICT_DROP, &[DIR_TO_CC, DIR_FROM_CC][..]),
        (
            "would_drop",
            VERDICT_WOULD_DROP,
            &[DIR_TO_CC, DIR_FROM_CC][..],
        ),
        (
            "allowlisted",
            VERDICT_ALLOWLISTED,
            &[DIR_TO_CC, DIR_FROM_CC][..],
        ),
    ] {
        let p: u64 = dirs.iter().map(|d| sum(v, *d, UNIT_PACKETS)).sum();
        let b: u64 = dirs.iter().map(|d| sum(v, *d, UNIT_BYTES)).sum();
        println!("{name:<14} {p:>14} {b:>16}");
    }
    println!(
        "non-IP {}, parse errors {}, passed while off {}, non-first fragments {}",
        c[CNT_NON_IP as usize],
        c[CNT_PARSE_ERROR as usize],
        c[CNT_MODE_OFF as usize],
        c[CNT_FRAGMENT as usize]
    );
    let hits = maps.hits()?;
    let mut top: Vec<_> = hits.into_iter().collect();
    top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    if !top.is_empty() {
        top.truncate(10);
        let ids = Ids::load(&paths.ids_file()).unwrap_or_default();
        let names = ids.identities(top.iter().map(|(id, _)| *id));
        println!("top entries by hits:");
        for (id, n) in top {
            let name = names
                .get(&id)
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("entry #{id}"));
            println!("  {n:>12}  {name}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `  (dns:NAME)` for an entry followed from a DNS answer.
fn via(v: &serde_json::Value) -> String {
    v.as_str().map(|s| format!("  ({s})")).unwrap_or_default()
}

/// `c2wall-agent top`: reads /top from the running agent.
pub fn top(addr: std::net::SocketAddr, as_json: bool) -> Result<ExitCode> {
    use std::fmt::Write as _;
    use std::io::{Read, Write};
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
            .with_context(|| format!("connecting to the agent at {addr} (its --metrics-addr)"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(conn, "GET /top HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp)?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("malformed reply from the agent")?;
    if as_json {
        emit(&mut std::io::stdout(), &format!("{body}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(body).context("reply is not JSON")?;
    let mut out = String::from("top entries by hits:\n");
    for t in v["top"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:>12}  {}{}",
            t["hits"],
            t["entry"].as_str().unwrap_or("?"),
            via(&t["via"])
        );
    }
    out.push_str("latest sampled drops (newest first):\n");
    for r in v["recent"].as_array().into_iter().flatten() {
        let at = r["at"].as_i64().unwrap_or(0).max(0) as u64;
        let _ = writeln!(
            out,
            "  {}  {:<8} {:<28} -> {} ({} port {}) {}{}",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)
            ),
            r["direction"].as_str().unwrap_or("?"),
            r["subscriber"].as_str().unwrap_or("?"),
            r["cc"].as_str().unwrap_or("?"),
            r["protocol"],
            r["cc_port"],
            if r["dropped"].as_bool() == Some(true) {
                "dropped"
            } else {
                "would drop"
            },
            via(&r["via"]),
        );
    }
    emit(&mut std::io::stdout(), &out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a command's output. A reader that has stopped reading (`top |
/// head`) has what it wanted: a broken pipe is not an error. (This binary is
/// also the daemon, so SIGPIPE stays ignored rather than reset.)
fn emit(w: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|_| w.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_to_a_closed_pipe_is_not_an_error() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        drop(reader);
        super::emit(&mut writer, "top entries by hits:\n").unwrap();
        // Anything else still is.
        let mut full = std::io::Cursor::new([0u8; 2]);
        assert!(super::emit(&mut full, "more than two bytes").is_err());
    }
}
