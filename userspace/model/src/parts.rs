//! Work over a long list cut into one part per core, run side by side and
//! returned in list order (a snapshot's entries, decoded by a subscriber or
//! encoded by the coordinator).

use std::ops::Range;

/// `f` over `0..n` cut into one range per core, each of at least
/// `min_part` items (one range, on this thread, when `n` is smaller), the
/// results in range order.
pub fn in_parts<T: Send>(
    n: usize,
    min_part: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let parts = cores.min(n / min_part.max(1)).max(1);
    if parts == 1 {
        return vec![f(0..n)];
    }
    let size = n.div_ceil(parts);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(size)
            .map(|start| s.spawn(move || f(start..(start + size).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_cover_the_list_once_in_order() {
        for (n, min) in [(0, 10), (5, 10), (100, 10), (101, 10), (1_000_003, 1)] {
            let ranges = in_parts(n, min, |r| r);
            assert_eq!(ranges.first().map(|r| r.start), Some(0), "{n}");
            assert_eq!(ranges.last().map(|r| r.end), Some(n), "{n}");
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start), "{n}");
            assert!(
                ranges.len() == 1 || ranges.iter().all(|r| r.len() >= min),
                "{n}"
            );
        }
    }
}
