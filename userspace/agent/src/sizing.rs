//! How big a rule set's maps are made: what the table holds plus headroom
//! for in-place changes, within the configured limits. A reload creates the
//! new set's maps at this size, so kernel memory follows the list both ways.

use c2wall_common::{FILTER_MAX_BITS, FILTER_MIN_BITS};

use crate::compile::Compiled;
use crate::dataplane::SetSize;
use crate::error::AgentError;

/// Slots beyond the content a new map gets, so that small changes apply in
/// place; a change that outgrows them takes a reload, which resizes.
pub fn with_headroom(n: usize) -> usize {
    n + n / 4 + 1024
}

/// Refuses counts above the configured limits, naming the setting.
pub fn check_limits(
    (n4, n6, np): (usize, usize, usize),
    (cap4, cap6, capp): (usize, usize, usize),
) -> Result<(), AgentError> {
    for (what, needed, capacity, setting) in [
        ("IPv4", n4, cap4, "capacity.nodes_v4"),
        ("IPv6", n6, cap6, "capacity.nodes_v6"),
        ("port", np, capp, "capacity.ports"),
    ] {
        if needed > capacity {
            return Err(AgentError::Capacity {
                what,
                needed,
                capacity,
                setting,
            });
        }
    }
    Ok(())
}

/// Slots of a slot table for `n` slots: 90% full, which two buckets of
/// five entries per slot place easily (c2wall_common::table); slots that
/// later find no room in place go to the stash.
pub fn table_slots(n: usize) -> usize {
    n + n / 9 + 64
}

/// The maps a set holding `c` is created with.
pub fn set_size(c: &Compiled, limits: (usize, usize, usize)) -> Result<SetSize, AgentError> {
    let (n4, n6, np) = c.slot_counts();
    check_limits((n4, n6, np), limits)?;
    let cap = |n: usize, limit: usize| with_headroom(n).min(limit).max(1) as u32;
    let table = |n: usize, limit: usize| table_slots(n).min(limit.max(n)).max(1) as u32;
    Ok(SetSize {
        nodes_v4: table(n4, limits.0),
        nodes_v6: table(n6, limits.1),
        ports: cap(np, limits.2),
        filter_bits: filter_bits(n4 + n6),
    })
}

/// About eight slots per 64-byte block: few enough that an address's
/// Bloom bits are rarely all set by others (c2wall_common::filter), so most
/// lookups skip every probe.
pub fn filter_bits(slots: usize) -> u8 {
    let blocks = (slots / 8).max(1).next_power_of_two();
    (blocks.trailing_zeros() as u8).clamp(FILTER_MIN_BITS, FILTER_MAX_BITS)
}

/// Whether an in-place change that takes the set to `counts` slots fits the
/// maps it has.
pub fn fits_set((n4, n6, np): (usize, usize, usize), size: SetSize) -> bool {
    n4 <= size.nodes_v4 as usize && n6 <= size.nodes_v6 as usize && np <= size.ports as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grows_with_the_list_within_bounds() {
        assert_eq!(filter_bits(0), FILTER_MIN_BITS);
        assert_eq!(filter_bits(1_000), 7);
        assert_eq!(filter_bits(100_000), 14);
        assert_eq!(filter_bits(10_000_000), FILTER_MAX_BITS);
    }

    #[test]
    fn limits_name_the_setting() {
        let e = check_limits((10, 0, 0), (5, 5, 5)).unwrap_err().to_string();
        assert!(e.contains("capacity.nodes_v4"), "{e}");
    }
}
