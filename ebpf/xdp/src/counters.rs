//! The per-CPU counters, as both the verdict and DNS following bump them.

use crate::maps::COUNTERS;

/// Adds `n` to counter `idx` (c2wall_common::counters).
#[inline(always)]
pub fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx / 2) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { (*p)[(idx & 1) as usize] += n };
    }
}

/// One packet of `len` bytes to the verdict counters whose packets are
/// counter `idx` (even) and bytes the next: one lookup for both.
#[inline(always)]
pub fn count_packet(idx: u32, len: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx / 2) {
        // SAFETY: as in count().
        unsafe {
            (*p)[0] += 1;
            (*p)[1] += len;
        }
    }
}
