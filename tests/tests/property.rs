//! Random lists against the reference matcher (c2wall_model::matcher):
//! - `compiled_lookup_matches_reference`: the compiler plus a replay of the
//!   kernel's lookup in Rust, many cases, no root;
//! - `kernel_matches_reference`: the real XDP program through BPF_PROG_TEST_RUN.

use std::net::IpAddr;

use c2wall_agent::{
    compile::compile,
    ids::{self, Ids},
    sim,
};
use c2wall_common::*;
use c2wall_e2e::{
    gen,
    packet::{Frame, L4},
    require_root,
    rig::{Rig, XDP_DROP, XDP_PASS},
};
use c2wall_model::{
    matcher::{decide, protected, PacketView, Side},
    Action, Entry, Protocol,
};
use proptest::prelude::*;

fn list_text(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn compiled_lookup_matches_reference(seed in any::<u64>(), n in 1usize..60) {
        let (entries, _) = gen::list(seed, n);
        let with_ids = ids::fresh(&entries);
        let table = compile(&with_ids);
        let by_id: std::collections::HashMap<u32, &Entry> =
            with_ids.iter().map(|(e, id)| (*id, e)).collect();
        let sim = sim::Sim::new(&table);
        for p in gen::probes(seed, &entries, 40) {
            let want = decide(&entries, &p);
            let got = sim.decide(&p);
            let want = want.map(|m| (m.side == Side::ToCc, m.entry.clone()));
            let got = got.map(|(to, r)| (to, by_id[&r.entry_id].clone()));
            prop_assert_eq!(got, want, "packet {:?}", p);
        }
    }
}

/// The engine's incremental path (a coordinator delta) must leave the maps
/// exactly as a full compile of the resulting list would: same slots, same
/// values, same level bitmaps. Lists are walked A -> B -> C -> A with the
/// changes in random order, entries that change only action or direction
/// included.
fn incremental(seeds: [u64; 3], n: usize) -> Result<(), TestCaseError> {
    use c2wall_agent::{apply::Applier, dataplane::MemDataplane, engine::Engine, source::Snapshot};
    use c2wall_model::Identity;
    use std::collections::BTreeMap;
    let lists: Vec<BTreeMap<Identity, Entry>> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (mut es, _) = gen::list(*s, n);
            // Same identities with another action/direction across lists.
            if i == 1 {
                es.extend(gen::list(seeds[0], n / 2).0.into_iter().map(|mut e| {
                    e.action = Action::Monitor;
                    e
                }));
            }
            es.into_iter().map(|e| (e.identity(), e)).collect()
        })
        .collect();
    let mut eng = Engine::new(
        Applier::adopt(MemDataplane::new()).unwrap(),
        Ids::new(),
        None,
    );
    let first = Snapshot {
        entries: lists[0].values().cloned().collect(),
        ..Default::default()
    };
    eng.sync(&first).unwrap();
    let mut cur = lists[0].clone();
    for (step, next) in lists.iter().skip(1).chain([&lists[0]]).enumerate() {
        let mut changes: Vec<(Identity, Option<Entry>)> = next
            .iter()
            .filter(|(k, e)| cur.get(*k) != Some(*e))
            .map(|(k, e)| (k.clone(), Some(e.clone())))
            .chain(
                cur.keys()
                    .filter(|k| !next.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            )
            .collect();
        let mut rng = seeds[step] ^ 0x5151;
        for i in (1..changes.len()).rev() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            changes.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let r = eng.sync_changes(&changes).unwrap();
        prop_assert_eq!(r.entries, next.len());
        cur = next.clone();
        let with_ids: Vec<(Entry, u32)> = cur
            .iter()
            .map(|(k, e)| (e.clone(), eng.id_of(k).expect("id")))
            .collect();
        let want = compile(&with_ids);
        let got = eng.applier.dataplane().active();
        prop_assert_eq!(got.nodes, want.nodes, "step {}", step);
        prop_assert_eq!(got.ports, want.ports, "step {}", step);
        prop_assert_eq!(got.v4_levels, want.v4_levels, "step {}", step);
        prop_assert_eq!(got.v6_levels, want.v6_levels, "step {}", step);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn incremental_sync_matches_full_compile(a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), n in 1usize..50) {
        incremental([a, b, c], n)?;
    }
}

fn frame(p: &PacketView) -> Vec<u8> {
    let l4 = match p.ports {
        None => L4::Icmp,
        Some((Protocol::Tcp, s, d)) => L4::Tcp(s, d),
        Some((Protocol::Udp, s, d)) => L4::Udp(s, d),
    };
    Frame {
        src: p.src,
        dst: p.dst,
        ..Frame::new("0.0.0.0", "0.0.0.0", l4)
    }
    .build()
}

fn verdict_counts(rig: &Rig) -> Vec<u64> {
    use c2wall_agent::dataplane::Dataplane;
    rig.engine.applier.dataplane().counters().unwrap()
}

#[test]
fn kernel_matches_reference() {
    if !require_root("kernel_matches_reference") {
        return;
    }
    let mut rig = Rig::new("", "", MODE_ENFORCE);
    let mut checked = 0;
    let mut seen = std::collections::HashSet::new();
    for seed in 0..40u64 {
        let (entries, allow) = gen::list(seed, 5 + (seed as usize * 7) % 80);
        let allow_text: String = allow.iter().map(|p| format!("{p}\n")).collect();
        // Alternate between small diffs (in place) and fresh lists (reloads).
        rig.load(&list_text(&entries), &allow_text);
        for p in gen::probes(seed, &entries, 30) {
            let before = verdict_counts(&rig);
            let got = rig.run(&frame(&p));
            let after = verdict_counts(&rig);
            let m = decide(&entries, &p);
            let allowed = |a: IpAddr| protected(&allow, a);
            let (want_action, want_verdict) = match m {
                None => (XDP_PASS, VERDICT_PASS),
                Some(_) if allowed(p.src) || allowed(p.dst) => (XDP_PASS, VERDICT_ALLOWLISTED),
                Some(m) if m.entry.action == Action::Drop => (XDP_DROP, VERDICT_DROP),
                Some(_) => (XDP_PASS, VERDICT_WOULD_DROP),
            };
            assert_eq!(
                got, want_action,
                "seed {seed}, packet {p:?}, reference {m:?}"
            );
            let dir = match m.map(|m| m.side) {
                Some(Side::FromCc) => DIR_FROM_CC,
                _ => DIR_TO_CC,
            };
            let fam = if p.dst.is_ipv4() {
                FAM_IDX_V4
            } else {
                FAM_IDX_V6
            };
            let idx = verdict_counter(want_verdict, dir, fam, UNIT_PACKETS) as usize;
            assert_eq!(
                after[idx],
                before[idx] + 1,
                "seed {seed}, packet {p:?}: counted under the wrong verdict/direction"
            );
            seen.insert((want_verdict, dir, fam));
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} packets checked");
    // The generator must exercise every outcome, or agreement proves little.
    for v in [VERDICT_DROP, VERDICT_WOULD_DROP, VERDICT_ALLOWLISTED] {
        for d in [DIR_TO_CC, DIR_FROM_CC] {
            for f in [FAM_IDX_V4, FAM_IDX_V6] {
                assert!(
                    seen.contains(&(v, d, f)),
                    "no case of verdict {v} dir {d} family {f}"
                );
            }
        }
    }
    eprintln!("kernel agreed with the reference on {checked} packets");
}
