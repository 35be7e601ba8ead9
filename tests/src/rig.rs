//! The real program (XDP, or the same verdict logic at tc) loaded with
//! private maps, driven by BPF_PROG_TEST_RUN.

use aya::{
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
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
use c2wall_common::{PROGRAM_NAME, TC_PROGRAM_NAME};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
/// tc's verdicts (linux/pkt_cls.h): "next" (our pass) and "shot" (drop).
const TC_ACT_UNSPEC: u32 = -1i32 as u32;
const TC_ACT_SHOT: u32 = 2;

/// Which entry point of the object runs the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    Tc,
}

pub struct Rig {
    pub ebpf: Ebpf,
    pub engine: Engine<KernelMaps>,
    pub hook: Hook,
}

impl Rig {
    /// Loads the XDP program with `list` (blocklist file syntax) and `allow`.
    pub fn new(list: &str, allow: &str, mode: u32) -> Rig {
        Rig::with_hook(Hook::Xdp, list, allow, mode)
    }

    /// As [`Rig::new`], with the program of `hook`.
    pub fn with_hook(hook: Hook, list: &str, allow: &str, mode: u32) -> Rig {
        let cap = Capacity::default();
        let mut ebpf = match hook {
            Hook::Xdp => loader::load_unpinned(loader::OBJECT, PROGRAM_NAME),
            Hook::Tc => loader::load_unpinned_tc(),
        }
        .expect("load program");
        let maps = loader::take_maps(&mut ebpf, &cap).expect("maps");
        let mut applier = Applier::adopt(maps).expect("adopt");
        applier.set_mode(mode).expect("mode");
        let mut rig = Rig {
            ebpf,
            engine: Engine::new(applier, Ids::new(), None),
            hook,
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

    /// The XDP action for one frame run `n` times in a row (one CPU, no gap);
    /// at tc, its verdict translated to the XDP action it stands for.
    pub fn run_repeat(&self, frame: &[u8], n: u32) -> u32 {
        self.try_run_repeat(frame, n).expect("BPF_PROG_TEST_RUN")
    }

    /// As [`Rig::run`], or None when the kernel's test harness refuses the
    /// frame (at tc it builds an skb, which needs whole IP headers).
    pub fn try_run(&self, frame: &[u8]) -> Option<u32> {
        match self.try_run_repeat(frame, 1) {
            Ok(v) => Some(v),
            Err(aya::programs::ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
            {
                None
            }
            Err(e) => panic!("BPF_PROG_TEST_RUN: {e}"),
        }
    }

    fn try_run_repeat(&self, frame: &[u8], n: u32) -> Result<u32, aya::programs::ProgramError> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: n,
            ..Default::default()
        };
        Ok(match self.hook {
            Hook::Xdp => self.program().test_run(opts)?.return_value,
            Hook::Tc => {
                let p: &SchedClassifier = self
                    .ebpf
                    .program(TC_PROGRAM_NAME)
                    .expect("tc program")
                    .try_into()
                    .expect("classifier");
                match p.test_run(opts)?.return_value {
                    TC_ACT_UNSPEC => XDP_PASS,
                    TC_ACT_SHOT => XDP_DROP,
                    other => panic!("tc verdict {other} is neither next nor shot"),
                }
            }
        })
    }
}

/// Runs each named case `fn(hook: Hook)` through both entry points, as
/// `xdp::NAME` and `tc::NAME` tests: XDP and the tc fallback must give the
/// same verdicts and counts. Root-only, as [`crate::require_root`] says.
#[macro_export]
macro_rules! both_hooks {
    ($($name:ident),+ $(,)?) => {
        mod xdp {
            $(#[test]
            fn $name() {
                if $crate::require_root(stringify!($name)) {
                    super::$name($crate::rig::Hook::Xdp);
                }
            })+
        }
        mod tc {
            $(#[test]
            fn $name() {
                if $crate::require_root(stringify!($name)) {
                    super::$name($crate::rig::Hook::Tc);
                }
            })+
        }
    };
}
