//! Helpers for c2wall's root-only tests: crafted packets, throwaway network
//! namespaces, processes that are always cleaned up.

pub mod bench_agent;
pub mod bgp;
pub mod dns;
pub mod dnswire;
pub mod fleet;
pub mod flow;
pub mod netns;
pub mod packet;
/// A real PostgreSQL server per test (the coordinator's tests use the same file).
#[path = "../../userspace/coordinator/tests/common/pg.rs"]
pub mod pg;
pub mod process;
pub mod relay;
pub mod rules;
pub mod stats;

/// True when the tests may touch the kernel. Outside CI a non-root run skips
/// them with a message; in CI (CI=true) not being root is a failure, so a
/// misconfigured runner cannot turn every kernel test into a silent pass.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{test}: kernel tests must run as root in CI");
        }
        eprintln!("SKIP {test}: needs root (BPF, XDP, network namespaces)");
    }
    root
}

/// A short suffix unique to this process and call, for namespace and pin names.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("c2w{tag}{}x{n}", std::process::id())
}
pub mod fuzzgen;
pub mod gen;
pub mod rig;
pub mod topo;
