//! The per-CPU counters, as both the verdict and DNS following bump them.

use crate::maps::COUNTERS;

#[inline(always)]
pub fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *p += n };
    }
}
