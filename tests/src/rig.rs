//! The real XDP program loaded with private maps, driven by BPF_PROG_TEST_RUN.

use aya::{
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use c2wall_agent::{
    apply::Applier,
    config::Capacity,
    engine::Engine,
    ids::Ids,
    kernel::KernelMaps,
    loader,
    source::{file::parse_allowlist, file::parse_blocklist, Snapshot},
};
use c2wall_common::PROGRAM_NAME;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Rig {
    pub ebpf: Ebpf,
    pub engine: Engine<KernelMaps>,
}

impl Rig {
    /// Loads the program with `list` (blocklist file syntax) and `allow`.
    pub fn new(list: &str, allow: &str, mode: u32) -> Rig {
        let cap = Capacity::default();
        let mut ebpf =
            loader::load_unpinned(loader::OBJECT, PROGRAM_NAME, &cap).expect("load program");
        let maps = loader::take_maps(&mut ebpf, &cap).expect("maps");
        let mut applier = Applier::adopt(maps).expect("adopt");
        applier.set_mode(mode).expect("mode");
        let mut rig = Rig {
            ebpf,
            engine: Engine::new(applier, Ids::new(), None),
        };
        rig.load(list, allow);
        rig
    }

    pub fn load(&mut self, list: &str, allow: &str) {
        let (entries, rejected) = parse_blocklist("test", list);
        assert!(rejected.is_empty(), "bad test list: {rejected:?}");
        let (allow, rejected) = parse_allowlist("test", allow);
        assert!(rejected.is_empty(), "bad test allowlist: {rejected:?}");
        let snap = Snapshot {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            allow,
            rejected: Vec::new(),
        };
        self.engine.sync(&snap).expect("sync");
    }

    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
            .expect("program")
            .try_into()
            .expect("xdp")
    }

    /// The XDP action for one frame.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.run_repeat(frame, 1)
    }

    /// The XDP action for one frame run `n` times in a row (one CPU, no gap).
    pub fn run_repeat(&self, frame: &[u8], n: u32) -> u32 {
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: n,
            ..Default::default()
        };
        self.program()
            .test_run(opts)
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }
}
