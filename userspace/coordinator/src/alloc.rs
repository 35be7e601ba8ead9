//! Allocator settings for a long-running process holding a large set.

/// Caps glibc's malloc arenas at two unless `MALLOC_ARENA_MAX` is set.
///
/// Why: glibc gives each thread that allocates concurrently an arena of its
/// own, up to eight per core, and tokio runs store calls and snapshot
/// builds on a pool of blocking threads. A large batch (a 50,000-entry
/// publish, a million-entry snapshot) is decoded, prepared and framed on
/// whichever thread runs it, and the freed memory stays in that thread's
/// arena: measured with the sync bench at a million entries, a publishing
/// replica held 1.2 GiB resident with the default arenas and 0.66 GiB with
/// two, for the same live set. Allocation is not the coordinator's
/// bottleneck (its store commit is), so fewer arenas cost nothing visible.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called at start
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
