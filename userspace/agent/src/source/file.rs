//! Blocklist and allowlist files.
//!
//! Blocklist, one entry per line:
//! `PREFIX [tcp|udp PORT] [drop|monitor] [to|from|both] [# comment]`
//! A bare address is a host prefix. Blank lines and `#` comments are ignored, CRLF
//! is accepted. A bad line is reported (file, line, reason) and skipped; the good
//! lines still apply. An identity (prefix + port scope) listed twice is an error
//! on the second line, whichever file it is in, so no entry is silently replaced.
//!
//! Allowlist: one prefix per line, same comment rules.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use c2wall_model::{Entry, Identity, Prefix};

use super::{BlocklistSource, Rejected, Snapshot};
use crate::error::AgentError;

pub struct FileSource {
    pub blocklists: Vec<PathBuf>,
    pub allowlist: Option<PathBuf>,
}

impl BlocklistSource for FileSource {
    fn snapshot(&mut self) -> Result<Snapshot, AgentError> {
        let mut snap = Snapshot::default();
        let mut seen: HashMap<Identity, (String, usize)> = HashMap::new();
        for path in &self.blocklists {
            let text = read(path)?;
            let origin = path.display().to_string();
            let (entries, rejected) = parse_blocklist(&origin, &text);
            snap.rejected.extend(rejected);
            for (line, e) in entries {
                if let Some((f, l)) = seen.get(&e.identity()) {
                    snap.rejected.push(Rejected {
                        origin: origin.clone(),
                        line,
                        reason: format!("`{}` is already listed at {f}:{l}", e.identity()),
                    });
                    continue;
                }
                seen.insert(e.identity(), (origin.clone(), line));
                snap.entries.push(e);
            }
        }
        if let Some(path) = &self.allowlist {
            let text = read(path)?;
            let (allow, rejected) = parse_allowlist(&path.display().to_string(), &text);
            snap.allow = allow;
            snap.rejected.extend(rejected);
        }
        Ok(snap)
    }
}

fn read(path: &Path) -> Result<String, AgentError> {
    let bytes = fs::read(path).map_err(|source| AgentError::ReadFile {
        path: path.into(),
        source,
    })?;
    // Lossy: a stray non-UTF-8 byte then fails that line only, with its number.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn strip(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    line.split_once('#').map_or(line, |(l, _)| l).trim()
}

/// Parses blocklist text; returns entries with their line numbers.
pub fn parse_blocklist(origin: &str, text: &str) -> (Vec<(usize, Entry)>, Vec<Rejected>) {
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = strip(raw);
        if line.is_empty() {
            continue;
        }
        match c2wall_model::parse_entry(line) {
            Ok(e) => entries.push((i + 1, e)),
            Err(reason) => rejected.push(Rejected {
                origin: origin.to_string(),
                line: i + 1,
                reason,
            }),
        }
    }
    (entries, rejected)
}

pub fn parse_allowlist(origin: &str, text: &str) -> (Vec<Prefix>, Vec<Rejected>) {
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = strip(raw);
        if line.is_empty() {
            continue;
        }
        match line.parse::<Prefix>() {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(_) => {}
            Err(e) => rejected.push(Rejected {
                origin: origin.to_string(),
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    (out, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{Action, Direction, Protocol};

    #[test]
    fn full_syntax_and_defaults() {
        let text = "# header\r\n203.0.113.7\r\n198.51.100.0/24 tcp 443 monitor to # feodo\n\n2001:db8::/32 from\n";
        let (e, r) = parse_blocklist("f", text);
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].0, 2);
        assert_eq!(
            e[0].1.listed_prefix().unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(e[0].1.action, Action::Drop);
        assert_eq!(e[0].1.direction, Direction::Both);
        let s = e[1].1.scope.unwrap();
        assert_eq!((s.protocol, s.port), (Protocol::Tcp, 443));
        assert_eq!(
            (e[1].1.action, e[1].1.direction),
            (Action::Monitor, Direction::To)
        );
        assert_eq!(e[2].1.direction, Direction::From);
        assert_eq!(e[2].0, 5);
    }

    #[test]
    fn bad_lines_are_named_and_skipped() {
        let text = "203.0.113.0/24\n203.0.113.9/24\n192.0.2.1 tcp 70000\n192.0.2.1 sctp 5\n192.0.2.1 tcp\n300.1.1.1\n192.0.2.2 drop drop\n192.0.2.3";
        let (e, r) = parse_blocklist("list.txt", text);
        assert_eq!(e.len(), 2);
        let lines: Vec<usize> = r.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(
            r[0].to_string(),
            "list.txt:2: `203.0.113.9/24` has host bits set; did you mean 203.0.113.0/24?"
        );
        assert!(r[1].reason.contains("70000"), "{}", r[1].reason);
        assert!(r[2].reason.contains("sctp"), "{}", r[2].reason);
    }

    #[test]
    fn duplicates_across_files_are_refused_with_both_places() {
        let dir = std::env::temp_dir().join(format!("c2wall-src-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.txt");
        let b = dir.join("b.txt");
        let allow = dir.join("allow.txt");
        fs::write(&a, "192.0.2.1\n192.0.2.1 tcp 80\n").unwrap();
        fs::write(&b, "192.0.2.1/32 monitor\n").unwrap();
        fs::write(&allow, "192.0.2.0/24\nnot-an-ip\n").unwrap();
        let mut src = FileSource {
            blocklists: vec![a.clone(), b],
            allowlist: Some(allow),
        };
        let snap = src.snapshot().unwrap();
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(snap.allow.len(), 1);
        assert_eq!(snap.rejected.len(), 2);
        assert!(snap.rejected[0]
            .reason
            .contains(&format!("{}:1", a.display())));
        let missing = FileSource {
            blocklists: vec![dir.join("nope")],
            allowlist: None,
        }
        .snapshot();
        assert!(matches!(missing, Err(AgentError::ReadFile { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
