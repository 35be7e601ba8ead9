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
    fs,
    path::{Path, PathBuf},
};

use c2wall_model::{Entry, Identity, Prefix};

use super::{BlocklistSource, Rejected, Snapshot};
use crate::error::AgentError;
use crate::fastmap::FastMap;
use crate::ids::IdKey;

pub struct FileSource {
    pub blocklists: Vec<PathBuf>,
    pub allowlist: Option<PathBuf>,
}

impl BlocklistSource for FileSource {
    fn snapshot(&mut self) -> Result<Snapshot, AgentError> {
        let mut snap = Snapshot::default();
        let origins: Vec<String> = self
            .blocklists
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut files = Vec::new();
        for (file, path) in self.blocklists.iter().enumerate() {
            let text = read(path)?;
            let (entries, rejected) = parse_blocklist(&origins[file], &text);
            snap.rejected.extend(rejected);
            files.push(entries);
        }
        let (entries, repeated) = first_listings(files, &origins);
        snap.entries = entries;
        snap.rejected.extend(repeated);
        if let Some(path) = &self.allowlist {
            let text = read(path)?;
            let (allow, rejected) = parse_allowlist(&path.display().to_string(), &text);
            snap.allow = allow;
            snap.rejected.extend(rejected);
        }
        Ok(snap)
    }
}

/// The entries of each file (line, entry) with each identity once, in
/// listing order; a later listing of an identity is rejected, naming the
/// first. Repeats are found by sorting a compact key per prefix entry (a
/// hash set of a million 64-byte identities took 0.7 s).
fn first_listings(
    files: Vec<Vec<(usize, Entry)>>,
    origins: &[String],
) -> (Vec<Entry>, Vec<Rejected>) {
    let total: usize = files.iter().map(Vec::len).sum();
    // Listing index (over all files in order) -> (file, position in it).
    let starts: Vec<usize> = files
        .iter()
        .scan(0, |at, f| {
            let start = *at;
            *at += f.len();
            Some(start)
        })
        .collect();
    let locate = |i: usize| {
        let file = starts.partition_point(|s| *s <= i) - 1;
        (file, i - starts[file])
    };
    // Index of a repeated listing -> index of the identity's first one.
    let mut repeats: FastMap<usize, usize> = FastMap::default();
    let mut keys: Vec<(u128, u32, u32)> = Vec::with_capacity(total);
    // Domain entries (few) by identity.
    let mut names: FastMap<Identity, usize> = FastMap::default();
    let listed = files.iter().flatten().enumerate();
    for (i, (_, e)) in listed {
        match IdKey::of_entry(e) {
            Some(k) => {
                let (bits, tail) = k.packed();
                keys.push((bits, tail, i as u32));
            }
            None => {
                let first = *names.entry(e.identity()).or_insert(i);
                if first != i {
                    repeats.insert(i, first);
                }
            }
        }
    }
    // Any order that groups equal keys will do; the index breaks ties, so
    // the first listing leads its group.
    keys.sort_unstable();
    for run in keys.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        for (_, _, i) in &run[1..] {
            repeats.insert(*i as usize, run[0].2 as usize);
        }
    }
    drop(keys);
    let mut rejected: Vec<(usize, Rejected)> = repeats
        .iter()
        .map(|(&i, &first)| {
            let (file, at) = locate(i);
            let (f, fat) = locate(first);
            let (line, e) = &files[file][at];
            let l = files[f][fat].0;
            let reason = format!("`{}` is already listed at {}:{l}", e.identity(), origins[f]);
            let origin = origins[file].clone();
            (
                i,
                Rejected {
                    origin,
                    line: *line,
                    reason,
                },
            )
        })
        .collect();
    rejected.sort_by_key(|(i, _)| *i);
    let mut entries = Vec::with_capacity(total - repeats.len());
    let kept = files
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(i, _)| !repeats.contains_key(i));
    entries.extend(kept.map(|(_, (_, e))| e));
    (entries, rejected.into_iter().map(|(_, r)| r).collect())
}

fn read(path: &Path) -> Result<String, AgentError> {
    let bytes = fs::read(path).map_err(|source| AgentError::ReadFile {
        path: path.into(),
        source,
    })?;
    // Lossy: a stray non-UTF-8 byte then fails that line only, with its number.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn strip(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    line.split_once('#').map_or(line, |(l, _)| l).trim()
}

/// Texts longer than this are parsed in parts, one per core.
const PARSE_PART: usize = 1 << 20;

/// Parses blocklist text; returns entries with their line numbers. A long
/// text is cut at line ends into one part per core, parsed side by side.
pub fn parse_blocklist(origin: &str, text: &str) -> (Vec<(usize, Entry)>, Vec<Rejected>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = (text.len() / PARSE_PART).clamp(1, cores);
    if parts == 1 {
        return parse_lines(origin, text, 0);
    }
    // Part k starts after the first line end at or past k/parts of the text.
    let mut starts = vec![0];
    for k in 1..parts {
        let at = text.len() * k / parts;
        let start = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        starts.push(start.max(*starts.last().expect("pushed")));
    }
    starts.push(text.len());
    let mut first_line = 0;
    let mut jobs = Vec::new();
    for w in starts.windows(2) {
        let part = &text[w[0]..w[1]];
        jobs.push((part, first_line));
        first_line += part.bytes().filter(|b| *b == b'\n').count();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(part, first)| s.spawn(move || parse_lines(origin, part, first)))
            .collect();
        let (mut entries, mut rejected) = (Vec::new(), Vec::new());
        for h in handles {
            let (e, r) = h.join().expect("a parse thread does not panic");
            entries.extend(e);
            rejected.extend(r);
        }
        (entries, rejected)
    })
}

/// Parses lines; `first` is the number of lines before `text` in its file.
fn parse_lines(origin: &str, text: &str, first: usize) -> (Vec<(usize, Entry)>, Vec<Rejected>) {
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let i = i + first;
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

    #[test]
    fn a_long_file_parsed_in_parts_keeps_line_numbers_and_first_listings() {
        // Past PARSE_PART, so cut into one part per core: bad lines and
        // repeats on both sides of any cut keep their own line numbers.
        let mut lines: Vec<String> = (0..80_000u32)
            .map(|i| {
                format!(
                    "10.{}.{}.{} tcp 443 # padding",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                )
            })
            .collect();
        assert!(lines.iter().map(|l| l.len() + 1).sum::<usize>() > 2 * PARSE_PART);
        lines[10] = "300.0.0.1".into();
        lines[79_990] = "10.0.0.1 tcp 443 monitor".into(); // repeats line 2
        lines[40_000] = "evil.example".into();
        lines[40_001] = "EVIL.example".into();
        lines[79_999] = "bad line".into();
        let text = lines.join("\n");
        let (entries, bad) = parse_blocklist("f", &text);
        let bad_lines: Vec<usize> = bad.iter().map(|r| r.line).collect();
        assert_eq!(bad_lines, [11, 80_000]);
        assert_eq!(entries.len(), 79_998);
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "in line order");
        assert_eq!(entries[10].0, 12);

        let (kept, repeated) = first_listings(vec![entries], &["f".to_string()]);
        let reasons: Vec<(usize, &str)> = repeated
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (40_002, "`evil.example` is already listed at f:40001"),
                (79_991, "`10.0.0.1/32 tcp 443` is already listed at f:2"),
            ]
        );
        assert_eq!(kept.len(), 79_996);
        assert_eq!(kept[1].to_string(), "10.0.0.1/32 tcp 443 drop");
    }
}
