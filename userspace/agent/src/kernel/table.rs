//! The slot tables from userspace: a reload's table placed with cuckoo
//! moves, and the in-place changes of a delta. The layout, and why these
//! writes are safe while packets read the table, are in
//! c2wall_common::table.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use aya::maps::MapData;
use c2wall_common::*;

/// One family's bucket layout.
pub trait Layout {
    type Bucket: aya::Pod + Default;
    type Addr: Copy + PartialEq;
    const WHAT: &'static str;
    fn hash(seed: u64, addr: Self::Addr, idx: u32) -> u64;
    fn metas(b: &mut Self::Bucket) -> &mut [u64; BUCKET_ENTRIES];
    fn meta(b: &Self::Bucket, e: usize) -> u64;
    fn addr(b: &Self::Bucket, e: usize) -> Self::Addr;
    fn set_addr(b: &mut Self::Bucket, e: usize, a: Self::Addr);
}

pub struct V4;
pub struct V6;

impl Layout for V4 {
    type Bucket = V4Bucket;
    type Addr = u32;
    const WHAT: &'static str = "IPv4";
    fn hash(seed: u64, addr: u32, idx: u32) -> u64 {
        hash_v4(seed, addr, idx)
    }
    fn metas(b: &mut V4Bucket) -> &mut [u64; BUCKET_ENTRIES] {
        &mut b.meta
    }
    fn meta(b: &V4Bucket, e: usize) -> u64 {
        b.meta[e]
    }
    fn addr(b: &V4Bucket, e: usize) -> u32 {
        b.addr[e]
    }
    fn set_addr(b: &mut V4Bucket, e: usize, a: u32) {
        // SAFETY: a write to an entry of the bucket we hold.
        unsafe { std::ptr::write_volatile(&mut b.addr[e], a) };
    }
}

impl Layout for V6 {
    type Bucket = V6Bucket;
    type Addr = [u64; 2];
    const WHAT: &'static str = "IPv6";
    fn hash(seed: u64, [hi, lo]: [u64; 2], idx: u32) -> u64 {
        hash_v6(seed, hi, lo, idx)
    }
    fn metas(b: &mut V6Bucket) -> &mut [u64; BUCKET_ENTRIES] {
        &mut b.meta
    }
    fn meta(b: &V6Bucket, e: usize) -> u64 {
        b.meta[e]
    }
    fn addr(b: &V6Bucket, e: usize) -> [u64; 2] {
        b.addr[e]
    }
    fn set_addr(b: &mut V6Bucket, e: usize, a: [u64; 2]) {
        // SAFETY: as for V4.
        unsafe { std::ptr::write_volatile(&mut b.addr[e], a) };
    }
}

/// A table's buckets mapped into our memory.
pub struct Mapping<B> {
    ptr: *mut B,
    n: usize,
    bytes: usize,
}

// SAFETY: the mapping is owned by this value and only reached through it.
unsafe impl<B> Send for Mapping<B> {}

impl<B: aya::Pod> Mapping<B> {
    /// Maps the `n` buckets of `map` (created with BPF_F_MMAPABLE).
    pub fn new(map: &MapData, n: u32) -> io::Result<Self> {
        let n = n as usize;
        let bytes = (n * size_of::<B>()).div_ceil(4096).max(1) * 4096;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the map's value area, unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr as *mut B,
            n,
            bytes,
        })
    }

    pub fn buckets(&mut self) -> &mut [B] {
        // SAFETY: n buckets of B fit in the mapping; B is plain data.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) }
    }

    /// The first element, for atomic access to single words.
    pub fn as_ptr(&self) -> *mut B {
        self.ptr
    }

    pub fn view(&self) -> &[B] {
        // SAFETY: as in buckets.
        unsafe { std::slice::from_raw_parts(self.ptr, self.n) }
    }
}

impl<B> Drop for Mapping<B> {
    fn drop(&mut self) {
        // SAFETY: ptr/bytes are the mapping made in `new`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.bytes) };
    }
}

/// A seed for a new table's hash: random, so no list can be made to collide.
pub fn new_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn both<L: Layout>(seed: u64, n: usize, addr: L::Addr, idx: u32) -> [usize; 2] {
    let (a, b) = buckets(L::hash(seed, addr, idx), n as u32);
    [a as usize, b as usize]
}

/// Writes a meta word in one store, after every write before it.
fn store(m: &mut u64, v: u64) {
    // SAFETY: an aligned u64 of the mapping, written only by us.
    unsafe { AtomicU64::from_ptr(m) }.store(v, Ordering::Release);
}

/// The entry of slot (addr, idx) in `t`, live or dead.
fn find<L: Layout>(t: &[L::Bucket], seed: u64, addr: L::Addr, idx: u32) -> Option<(usize, usize)> {
    for b in both::<L>(seed, t.len(), addr, idx) {
        for e in 0..BUCKET_ENTRIES {
            let m = L::meta(&t[b], e);
            if meta_level(m) == Some(idx) && L::addr(&t[b], e) == addr {
                return Some((b, e));
            }
        }
    }
    None
}

/// The live meta word of slot (addr, idx), if `t` holds it.
pub fn get<L: Layout>(t: &[L::Bucket], seed: u64, addr: L::Addr, idx: u32) -> Option<u64> {
    let (b, e) = find::<L>(t, seed, addr, idx)?;
    let m = L::meta(&t[b], e);
    (m & META_DEAD == 0).then_some(m)
}

/// Makes slot (addr, idx) live with `meta` in place: its own entry (live or
/// dead) or an empty one of its buckets. False: no room, nothing written.
pub fn put<L: Layout>(t: &mut [L::Bucket], seed: u64, addr: L::Addr, idx: u32, meta: u64) -> bool {
    if let Some((b, e)) = find::<L>(t, seed, addr, idx) {
        store(&mut L::metas(&mut t[b])[e], meta);
        return true;
    }
    for b in both::<L>(seed, t.len(), addr, idx) {
        if let Some(e) = L::metas(&mut t[b]).iter().position(|m| *m == 0) {
            L::set_addr(&mut t[b], e, addr);
            fence(Ordering::Release);
            store(&mut L::metas(&mut t[b])[e], meta);
            return true;
        }
    }
    false
}

/// Marks slot (addr, idx) dead; false if `t` does not hold it live.
pub fn remove<L: Layout>(t: &mut [L::Bucket], seed: u64, addr: L::Addr, idx: u32) -> bool {
    let Some((b, e)) = find::<L>(t, seed, addr, idx) else {
        return false;
    };
    let m = L::metas(&mut t[b])[e];
    if m & META_DEAD != 0 {
        return false;
    }
    store(&mut L::metas(&mut t[b])[e], m | META_DEAD);
    true
}

/// Every live entry: (address, level index, meta word).
pub fn live<L: Layout>(t: &[L::Bucket]) -> Vec<(L::Addr, u32, u64)> {
    let mut out = Vec::new();
    for b in t {
        for e in 0..BUCKET_ENTRIES {
            let m = L::meta(b, e);
            if let (Some(idx), 0) = (meta_level(m), m & META_DEAD) {
                out.push((L::addr(b, e), idx, m));
            }
        }
    }
    out
}

/// Most moves for one slot before a placement gives up.
const MAX_KICKS: usize = 500;

/// Places every item in the empty table `t` with cuckoo moves (nothing
/// reads `t` yet). False: some slot found no place; `t` is then partly
/// written and must be cleared before another try.
pub fn build<L: Layout>(
    t: &mut [L::Bucket],
    seed: u64,
    items: impl Iterator<Item = (L::Addr, u32, u64)>,
) -> bool {
    let n = t.len();
    let mut fill = vec![0u8; n];
    let mut rng = seed | 1;
    for item in items {
        let mut cur = item;
        let mut placed = false;
        for _ in 0..MAX_KICKS {
            let (addr, idx, meta) = cur;
            let bs = both::<L>(seed, n, addr, idx);
            if let Some(b) = bs
                .into_iter()
                .find(|b| (fill[*b] as usize) < BUCKET_ENTRIES)
            {
                let e = fill[b] as usize;
                L::set_addr(&mut t[b], e, addr);
                L::metas(&mut t[b])[e] = meta;
                fill[b] += 1;
                placed = true;
                break;
            }
            // Both full: take a random entry's place; it moves on next.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let b = bs[(rng & 1) as usize];
            let e = ((rng >> 1) % BUCKET_ENTRIES as u64) as usize;
            let old = L::metas(&mut t[b])[e];
            let old_addr = L::addr(&t[b], e);
            L::set_addr(&mut t[b], e, addr);
            L::metas(&mut t[b])[e] = meta;
            let old_idx = meta_level(old).expect("a full bucket's entries are live");
            cur = (old_addr, old_idx, old);
        }
        if !placed {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> Vec<V4Bucket> {
        vec![V4Bucket::default(); n]
    }

    #[test]
    fn a_full_build_holds_every_slot_once() {
        let items: Vec<(u32, u32, u64)> = (0..9_000u32)
            .map(|i| {
                (
                    i.wrapping_mul(2_654_435_761),
                    8,
                    meta(8, side(2, i + 1), 0, false),
                )
            })
            .collect();
        // 90% full.
        let mut t = table(2_000);
        assert!(build::<V4>(&mut t, 42, items.iter().copied()));
        for (a, idx, m) in &items {
            assert_eq!(get::<V4>(&t, 42, *a, *idx), Some(*m));
        }
        assert_eq!(live::<V4>(&t).len(), items.len());
        assert_eq!(get::<V4>(&t, 42, 12345, 7), None);
    }

    #[test]
    fn in_place_changes_keep_each_entry_to_its_slot() {
        let mut t = table(4);
        let m1 = meta(8, side(2, 1), 0, false);
        assert!(put::<V4>(&mut t, 1, 0x0a00_0001, 8, m1));
        assert!(remove::<V4>(&mut t, 1, 0x0a00_0001, 8));
        assert!(!remove::<V4>(&mut t, 1, 0x0a00_0001, 8), "already dead");
        assert_eq!(get::<V4>(&t, 1, 0x0a00_0001, 8), None);
        // The same address at another level is another slot.
        assert_eq!(get::<V4>(&t, 1, 0x0a00_0001, 7), None);
        // Revived in its own entry: no second entry is taken.
        let m2 = meta(8, side(1, 3), 0, false);
        assert!(put::<V4>(&mut t, 1, 0x0a00_0001, 8, m2));
        assert_eq!(get::<V4>(&t, 1, 0x0a00_0001, 8), Some(m2));
        let used: usize = t
            .iter()
            .map(|b| b.meta.iter().filter(|m| **m != 0).count())
            .sum();
        assert_eq!(used, 1);
        // A dead entry is never given to another slot: fill every empty
        // entry, then one more slot finds no room.
        remove::<V4>(&mut t, 1, 0x0a00_0001, 8);
        let mut placed = 0;
        for a in 0..10_000u32 {
            if put::<V4>(&mut t, 1, a << 8, 8, meta(8, side(2, 5), 0, false)) {
                placed += 1;
            }
        }
        assert_eq!(placed, 4 * BUCKET_ENTRIES - 1);
        assert_eq!(get::<V4>(&t, 1, 0x0a00_0001, 8), None);
    }

    #[test]
    fn ipv6_slots_compare_both_halves() {
        let mut t = vec![V6Bucket::default(); 8];
        let m = meta(16, side(2, 9), 0, true);
        assert!(put::<V6>(&mut t, 5, [1, 2], 16, m));
        assert_eq!(get::<V6>(&t, 5, [1, 2], 16), Some(m));
        assert_eq!(get::<V6>(&t, 5, [1, 3], 16), None);
        assert_eq!(get::<V6>(&t, 5, [0, 2], 16), None);
    }
}
