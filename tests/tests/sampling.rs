//! Drop sampling through the ring buffer, on the real program
//! (BPF_PROG_TEST_RUN): a flood yields at most the per-CPU budget of events
//! per second, the rest is counted, a full ring buffer is counted as lost, and
//! the verdict never waits for userspace.

use aya::maps::RingBuf;
use c2wall_agent::{dataplane::Dataplane, sightings::event_from_bytes};
use c2wall_common::*;
use c2wall_e2e::{
    packet::{Frame, L4},
    require_root,
    rig::{Rig, XDP_DROP},
};

#[test]
fn a_flood_yields_the_budget_and_counts_the_rest() {
    if !require_root("a_flood_yields_the_budget_and_counts_the_rest") {
        return;
    }
    let mut rig = Rig::new(
        "203.0.113.66 udp 9000\n203.0.113.88 monitor\n",
        "",
        MODE_ENFORCE,
    );
    rig.engine.applier.set_sample_budget(10).unwrap();
    let frame = Frame::new("198.51.100.10", "203.0.113.66", L4::Udp(40000, 9000)).build();
    // 500 listed packets back to back on one CPU, well within one second.
    assert_eq!(rig.run_repeat(&frame, 500), XDP_DROP);
    let mut ring = RingBuf::try_from(rig.ebpf.take_map(MAP_EVENTS).unwrap()).unwrap();
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        events.push(event_from_bytes(&item).expect("a whole event"));
    }
    assert_eq!(events.len(), 10, "exactly the budget");
    let e = events[0];
    assert_eq!(
        (e.verdict as u32, e.direction as u32, e.family, e.protocol),
        (VERDICT_DROP, DIR_TO_CC, FAMILY_V4, 17)
    );
    assert_eq!(&e.subscriber[..4], &[198, 51, 100, 10]);
    assert_eq!(&e.cc[..4], &[203, 0, 113, 66]);
    assert_eq!(
        (
            u16::from_be_bytes(e.cc_port),
            u16::from_be_bytes(e.subscriber_port)
        ),
        (9000, 40000)
    );
    assert_ne!(e.entry_id, 0);
    let c = rig.engine.applier.dataplane().counters().unwrap();
    assert_eq!(c[CNT_SAMPLED as usize], 10);
    assert_eq!(c[CNT_SAMPLE_SUPPRESSED as usize], 490);
    assert_eq!(
        c[verdict_counter(VERDICT_DROP, DIR_TO_CC, FAM_IDX_V4, UNIT_PACKETS) as usize],
        500,
        "every packet was still dropped"
    );

    // A would-drop from the C&C side is sampled too, with the sides swapped
    // (a larger budget: this second's 10 are spent).
    rig.engine.applier.set_sample_budget(100).unwrap();
    let from = Frame::new("203.0.113.88", "198.51.100.11", L4::Tcp(443, 50000)).build();
    rig.run(&from);
    let item = ring.next().expect("a would-drop event");
    let e = event_from_bytes(&item).unwrap();
    assert_eq!(
        (e.verdict as u32, e.direction as u32),
        (VERDICT_WOULD_DROP, DIR_FROM_CC)
    );
    assert_eq!(&e.subscriber[..4], &[198, 51, 100, 11]);
    assert_eq!(u16::from_be_bytes(e.cc_port), 443);
}

#[test]
fn the_budget_comes_back_in_the_next_second_and_not_before() {
    if !require_root("the_budget_comes_back_in_the_next_second_and_not_before") {
        return;
    }
    // The budget is per CPU: every run on CPU 0.
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
    let mut rig = Rig::new("203.0.113.66\n", "", MODE_ENFORCE);
    rig.engine.applier.set_sample_budget(5).unwrap();
    let frame = Frame::new("198.51.100.10", "203.0.113.66", L4::Udp(40000, 9000)).build();
    let sampled =
        |rig: &mut Rig| rig.engine.applier.dataplane().counters().unwrap()[CNT_SAMPLED as usize];
    // The window is timed in jiffies, its length the kernel's HZ as the
    // agent read it: 200 ms later the budget is still spent, 1.2 s after the
    // first flood it is back.
    let start = std::time::Instant::now();
    rig.run_repeat(&frame, 50);
    assert_eq!(sampled(&mut rig), 5);
    std::thread::sleep(std::time::Duration::from_millis(200));
    rig.run_repeat(&frame, 50);
    if start.elapsed() < std::time::Duration::from_millis(900) {
        assert_eq!(sampled(&mut rig), 5, "no new budget within the second");
    }
    std::thread::sleep(std::time::Duration::from_millis(1200).saturating_sub(start.elapsed()));
    rig.run_repeat(&frame, 50);
    assert_eq!(sampled(&mut rig), 10, "a new second, a new budget");
}

#[test]
fn a_full_ring_buffer_is_counted_as_lost_and_never_stalls() {
    if !require_root("a_full_ring_buffer_is_counted_as_lost_and_never_stalls") {
        return;
    }
    let mut rig = Rig::new("203.0.113.66\n", "", MODE_ENFORCE);
    rig.engine.applier.set_sample_budget(1_000_000).unwrap();
    let frame = Frame::new("198.51.100.10", "203.0.113.66", L4::Udp(40000, 9000)).build();
    // Nobody reads the ring: it holds EVENTS_BYTES / (56 + 8) events.
    let n = 10_000;
    let start = std::time::Instant::now();
    assert_eq!(rig.run_repeat(&frame, n), XDP_DROP);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "no stall"
    );
    let c = rig.engine.applier.dataplane().counters().unwrap();
    let (written, lost) = (c[CNT_SAMPLED as usize], c[CNT_SAMPLE_LOST as usize]);
    let capacity = (EVENTS_BYTES / 64) as u64;
    assert_eq!(written + lost, n as u64);
    assert!(
        written <= capacity && written >= capacity - 8,
        "written {written}"
    );
    assert!(lost > 0);
    let mut ring = RingBuf::try_from(rig.ebpf.take_map(MAP_EVENTS).unwrap()).unwrap();
    let mut read = 0u64;
    while ring.next().is_some() {
        read += 1;
    }
    assert_eq!(read, written);
}
