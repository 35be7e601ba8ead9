//! The slot tables under in-place changes (c2wall_common::table): adds that
//! find no room in their two buckets are enforced from the stash, a withdrawn
//! stashed slot stops matching, and a full stash brings a reload that places
//! everything in larger tables, with every listed host dropped throughout.

use c2wall_agent::dataplane::Dataplane;
use c2wall_common::*;
use c2wall_e2e::{
    packet::{Frame, L4},
    require_root,
    rig::{Rig, XDP_DROP, XDP_PASS},
};

const SUB4: &str = "198.51.100.10";

fn host(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn list(hosts: &[String]) -> String {
    hosts.iter().map(|h| format!("{h}\n")).collect()
}

fn verdict(rig: &Rig, dst: &str) -> u32 {
    rig.run(&Frame::new(SUB4, dst, L4::Udp(1000, 53)).build())
}

fn config(rig: &Rig) -> Config {
    rig.engine.applier.dataplane().read_config().unwrap()
}

#[test]
fn adds_past_the_tables_room_go_to_the_stash_until_a_reload_places_them() {
    if !require_root("adds_past_the_tables_room_go_to_the_stash_until_a_reload_places_them") {
        return;
    }
    let mut hosts: Vec<String> = (0..3000).map(host).collect();
    let mut rig = Rig::new(&list(&hosts), "", MODE_ENFORCE);
    let first = config(&rig);
    let set = (first.active_set & 1) as usize;
    assert_eq!(
        first.stash_v4_levels[set], 0,
        "a reload places every slot in the table"
    );
    let buckets = first.v4_buckets[set];
    assert!(buckets > 0);

    // Add hosts one at a time until one goes to the stash.
    let mut stashed = None;
    for i in 0..1000 {
        hosts.push(host(100_000 + i));
        rig.load(&list(&hosts), "");
        let h = hosts.last().unwrap();
        assert_eq!(verdict(&rig, h), XDP_DROP, "added host {h}");
        let c = config(&rig);
        assert_eq!(c.active_set & 1, set as u32, "small adds go in place");
        if c.stash_v4_levels[set] != 0 {
            stashed = Some(h.clone());
            break;
        }
    }
    let stashed = stashed.expect("some add found both its buckets full");
    assert_eq!(
        config(&rig).stash_v4_levels[set],
        1 << (32 / V4_STRIDE),
        "the /32 level is stashed"
    );
    assert_eq!(
        verdict(&rig, "10.200.0.1"),
        XDP_PASS,
        "an unlisted host passes"
    );

    // Withdrawn from the stash: it stops matching and the level empties.
    hosts.retain(|h| *h != stashed);
    rig.load(&list(&hosts), "");
    assert_eq!(verdict(&rig, &stashed), XDP_PASS, "withdrawn {stashed}");
    assert_eq!(config(&rig).stash_v4_levels[set], 0);

    // Keep adding: the stash fills and a reload moves everything into
    // larger tables of the other set.
    let mut reloaded = false;
    for i in 1000..3000 {
        hosts.push(host(100_000 + i));
        rig.load(&list(&hosts), "");
        let h = hosts.last().unwrap();
        assert_eq!(verdict(&rig, h), XDP_DROP, "added host {h}");
        if config(&rig).active_set & 1 != set as u32 {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "a full stash or table brings a reload");
    let c = config(&rig);
    let now = (c.active_set & 1) as usize;
    assert_eq!(c.stash_v4_levels[now], 0, "the reload empties the stash");
    assert!(
        c.v4_buckets[now] > buckets,
        "and sizes the table for the list"
    );
    for h in &hosts {
        assert_eq!(
            verdict(&rig, h),
            XDP_DROP,
            "listed host {h} after the reload"
        );
    }
    assert_eq!(
        verdict(&rig, &stashed),
        XDP_PASS,
        "the withdrawn host stays out"
    );
}
