//! Bounded, structure-aware fuzzing of everything c2wall reads from outside:
//! the sync wire (snapshots, deltas, imports, publishes, down to the domain
//! types and the agent's verified set), the agent's and the coordinator's
//! state files, and every feed parser. Inputs are built with `arbitrary` from
//! random bytes (valid structures, then mutated), so they reach deep code
//! rather than failing at the first byte. Any panic is a bug: the input is
//! saved under target/fuzz-crashes and the command exits 1.
//!
//! `c2wall-fuzz --seconds 20` is CI's smoke run; `--seconds 1800` the long
//! one. `--seed` makes a run repeatable.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::PathBuf,
    time::{Duration, Instant},
};

use arbitrary::{Arbitrary, Unstructured};
use c2wall_agent::sync::{Pending, SyncedSet};
use c2wall_e2e::fuzzgen::{mutate, FMsg};
use c2wall_feeds::format::ALL as FORMATS;
use c2wall_model::{sign::Trust, wire::records_from_wire, Record};
use c2wall_proto::v1 as pb;
use clap::Parser;
use prost::Message;
use rand::{Rng, RngCore, SeedableRng};

#[derive(Parser)]
#[command(about = "Fuzz c2wall's decoders, state files and feed parsers for a bounded time.")]
struct Args {
    /// Total time, shared by the targets.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Only this target: wire, state or feeds.
    #[arg(long)]
    target: Option<String>,
    /// Random seed (default: from the clock); printed so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
}

/// How deep inputs reached, to show the run exercised more than decoding.
static DEEP: [std::sync::atomic::AtomicU64; 5] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 5];
const DEEP_NAMES: [&str; 5] = [
    "deltas decoded",
    "deltas verified and applied",
    "snapshots decoded",
    "damaged state files read back",
    "feed inputs with entries",
];

fn deep(i: usize) {
    DEEP[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A small verified set to apply fuzzed deltas to.
fn base_set() -> SyncedSet {
    let e = pb::Entry {
        key: Some(pb::EntryKey {
            prefix: "192.0.2.1/32".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = Record::try_from(&e).expect("valid");
    let digest = c2wall_model::SetDigest::of([&r.entry]).to_bytes();
    SyncedSet::from_snapshot(&[], 3, &digest, &[e], &[], &Trust::default()).expect("valid")
}

/// One input of the wire target: decode, convert, verify, apply.
fn wire(rng: &mut impl Rng, raw: &[u8]) {
    let Ok(msg) = FMsg::arbitrary(&mut Unstructured::new(raw)) else {
        return;
    };
    let mut msg = msg.wire();
    // Half the deltas are made to follow the base set with a digest that
    // matches (as a relay fixing it up would), so they are applied.
    if let Some(pb::sync_message::Kind::Delta(d)) = &mut msg.kind {
        if rng.random_bool(0.5) {
            d.previous_version = 3;
            d.lineage.clear();
            let mut entries = base_set().entries;
            for k in &d.removals {
                if let Ok(id) = c2wall_model::wire::identity_from_wire(k) {
                    entries.remove(&id);
                }
            }
            for e in &d.upserts {
                if let Ok(r) = Record::try_from(e) {
                    entries.insert(r.identity(), r.entry);
                }
            }
            d.digest = c2wall_model::SetDigest::of(entries.values()).to_bytes();
        }
    }
    let bytes = mutate(rng, msg.encode_to_vec());
    let trust = Trust::default();
    for b in [bytes.as_slice(), raw] {
        if let Ok(m) = pb::SyncMessage::decode(b) {
            match m.kind {
                Some(pb::sync_message::Kind::Snapshot(c)) => {
                    deep(2);
                    let _ = records_from_wire(&c.entries, "entries");
                    let _ = SyncedSet::from_snapshot(
                        &c.lineage,
                        c.version,
                        &c.digest,
                        &c.entries,
                        &c.signature,
                        &trust,
                    );
                }
                Some(pb::sync_message::Kind::Delta(d)) => {
                    deep(0);
                    let mut set = base_set();
                    let before = set.clone();
                    let mut p = Pending::default();
                    match set.apply_delta(&d, &mut p, &trust) {
                        Ok(()) => {
                            deep(1);
                            let _ = set.changes(&p);
                            set.rollback(p);
                            assert_eq!(set, before, "a rolled-back delta leaves the set");
                        }
                        Err(_) => assert_eq!(set, before, "a refused delta changes nothing"),
                    }
                }
                _ => {}
            }
        }
        for e in pb::PublishRequest::decode(b)
            .map(|r| r.upserts)
            .unwrap_or_default()
        {
            let _ = Record::try_from(&e);
        }
        for e in pb::ImportChunk::decode(b)
            .map(|c| c.entries)
            .unwrap_or_default()
        {
            let _ = Record::try_from(&e);
        }
    }
}

/// One input of the state target: a saved set, journal and high-water
/// mark, damaged, read back.
fn state(rng: &mut impl Rng, raw: &[u8], dir: &std::path::Path) {
    let path = dir.join("coordinator-set.pb");
    let set = base_set();
    let _ = std::fs::remove_file(c2wall_agent::sync::journal_path(&path));
    set.save(&path).expect("save");
    let good = std::fs::read(&path).expect("read");
    let which = rng.random_range(0..4);
    match which {
        0 => std::fs::write(&path, mutate(rng, good)).expect("write"),
        1 => std::fs::write(&path, raw).expect("write"),
        2 => std::fs::write(c2wall_agent::sync::journal_path(&path), raw).expect("write"),
        _ => {
            let hw = dir.join("c.db.highwater");
            std::fs::write(&hw, raw).expect("write");
            let _ = c2wall_coordinator::highwater::HighWater::open(&hw);
            return;
        }
    }
    deep(3);
    if let Ok(Some(loaded)) = SyncedSet::load(&path) {
        // Whatever it read verified: its digest matches its entries.
        assert_eq!(
            loaded.digest,
            c2wall_model::SetDigest::of(loaded.entries.values()),
            "a loaded set verifies"
        );
    }
}

/// Pieces feed files are made of, so that generated lines look like feeds.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "192.0.2.1", "198.51.100.0/24", "2001:db8::/32", "2001:db8::1", "10.0.0.0/8", "0.0.0.0/0",
    "256.1.1.1", "01.2.3.4", "::", "1.2.3.4:443", "[2001:db8::1]:80", "/33", "/", ",", ";", "#",
    " ", "\t", "\"", "'", "\r", "|", ":", "ip:port", "botnet_cc", "None", "tcp", "udp", "any",
    "{", "}", "[", "]", "\"cidr\":", "\"sblid\":", "\"type\":\"metadata\"", "\"records\":",
    "\"objects\":", "\"type\":\"indicator\"", "\"pattern\":", "[ipv4-addr:value = '192.0.2.9']",
    "[ipv6-addr:value = '2001:db8::9'] AND [network-traffic:dst_port = 443]", " OR ", " AND ",
    " FOLLOWEDBY ", "ISSUBSET", " IN ", "('1.2.3.4', '5.6.7.8')", "\"Attribute\":",
    "\"ip-dst\"", "\"ip-dst|port\"", "\"to_ids\":true", "\"value\":", "\"deleted\":false",
    "alert ip $HOME_NET any -> [", "] any (msg:\"ET CNC\"; sid:1;)", "# END (3 entries)",
    "first_seen_utc", "dst_ip", "dst_port", "\"2026-01-01T00:00:00Z\"", "\n",
];

/// Lines that mostly start with an address or prefix, followed by a few
/// pieces of feed syntax (and now and then a raw byte).
fn feed_text(rng: &mut impl Rng, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in raw.chunks(4).take(128) {
        if chunk[0] < 160 {
            out.extend_from_slice(TOKENS[chunk[0] as usize % 6].as_bytes());
        }
        for &b in &chunk[1..] {
            if b < 230 {
                out.extend_from_slice(TOKENS[b as usize % TOKENS.len()].as_bytes());
            } else {
                out.push(b);
            }
        }
        if rng.random_bool(0.8) {
            out.push(b'\n');
        }
    }
    out
}

fn feeds(rng: &mut impl Rng, raw: &[u8]) {
    let text = feed_text(rng, raw);
    for f in FORMATS {
        for b in [text.as_slice(), raw] {
            if let Ok(parsed) = f.parse(b, 1_800_000_000) {
                if !parsed.entries.is_empty() {
                    deep(4);
                }
                let _ = c2wall_feeds::policy::Policy::default().records(&parsed);
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let targets: Vec<&str> = match a.target.as_deref() {
        Some(t) => vec![t],
        None => vec!["wire", "state", "feeds"],
    };
    let dir = std::env::temp_dir().join(format!("c2wall-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let crashes = PathBuf::from("target/fuzz-crashes");
    // Panics are caught and reported once below, not printed per input.
    std::panic::set_hook(Box::new(|_| {}));
    let share = Duration::from_secs(a.seconds) / targets.len() as u32;
    let mut failed = 0;
    println!("c2wall-fuzz: seed {seed}, {}s per target", share.as_secs());
    for (i, target) in targets.iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < share {
            let mut raw = vec![0u8; rng.random_range(0..2048)];
            rng.fill_bytes(&mut raw);
            let r = catch_unwind(AssertUnwindSafe(|| match *target {
                "wire" => wire(&mut rng, &raw),
                "state" => state(&mut rng, &raw, &dir),
                "feeds" => feeds(&mut rng, &raw),
                other => panic!("unknown target {other}"),
            }));
            n += 1;
            if r.is_err() {
                failed += 1;
                let _ = std::fs::create_dir_all(&crashes);
                let file = crashes.join(format!("{target}-{seed}-{n}.bin"));
                let _ = std::fs::write(&file, &raw);
                eprintln!(
                    "c2wall-fuzz: {target}: panic on input {n}, saved to {}",
                    file.display()
                );
                if failed >= 10 {
                    break;
                }
            }
        }
        println!(
            "c2wall-fuzz: {target}: {n} inputs in {:.1}s",
            start.elapsed().as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    for (name, n) in DEEP_NAMES.iter().zip(&DEEP) {
        println!(
            "c2wall-fuzz:   {name}: {}",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    if failed > 0 {
        eprintln!("c2wall-fuzz: {failed} inputs panicked (seed {seed})");
        return std::process::ExitCode::FAILURE;
    }
    println!("c2wall-fuzz: no input panicked");
    std::process::ExitCode::SUCCESS
}
