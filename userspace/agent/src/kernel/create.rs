//! Creating the inner maps, each with BTF for its key and value.
//!
//! Linux 6.1 accepts a map into an array of maps only if it matches the
//! outer map's template in, among others, `timer_off`: -ENOENT when the
//! value's BTF type is a struct without a timer (the template's, from the
//! object's BTF, for our struct values) and -EINVAL for no BTF or a
//! non-struct value. An inner map created without BTF is therefore
//! refused (EINVAL). So every inner map is created with a small BTF of our
//! own: keys as byte arrays (an array's key as u32), struct values as a
//! struct of one byte array, and the hit counters' u64 as an integer, as
//! in the program. Later kernels compare BTF records instead and accept
//! both; this works on both.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;

use aya::maps::{Map, MapData};

pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Sizes the BTF describes: for each, a byte array (type id 4 + 2 * index)
/// and a struct holding it (the next id).
const SIZES: [u32; 8] = [4, 8, 20, 24, 32, 64, 16, 128];
const U8: u32 = 1;
const U32: u32 = 2;
const U64: u32 = 3;

fn bpf(cmd: libc::c_long, attr: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: attr is a valid bpf_attr prefix for `cmd`, alive for the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn push(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// The BTF blob: u8, u32, u64, and per size in SIZES a u8 array and a
/// struct of it.
fn blob() -> Vec<u8> {
    const KIND_INT: u32 = 1 << 24;
    const KIND_ARRAY: u32 = 3 << 24;
    const KIND_STRUCT_1: u32 = (4 << 24) | 1;
    let strings = b"\0u8\0u32\0u64\0b\0";
    let mut types = Vec::new();
    push(&mut types, &[1, KIND_INT, 1, 8]); // u8: name "u8", 1 byte, 8 bits
    push(&mut types, &[4, KIND_INT, 4, 32]); // u32
    push(&mut types, &[8, KIND_INT, 8, 64]); // u64
    for (i, n) in SIZES.iter().enumerate() {
        let array = 4 + 2 * i as u32;
        push(&mut types, &[0, KIND_ARRAY, 0, U8, U32, *n]);
        // struct { b: [u8; n] }: member name "b", type, bit offset 0.
        push(&mut types, &[0, KIND_STRUCT_1, *n, 12, array, 0]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]); // version, flags
    push(
        &mut out,
        &[
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ],
    );
    out.extend_from_slice(&types);
    out.extend_from_slice(strings);
    out
}

/// Our BTF, loaded once per process.
fn btf_fd() -> io::Result<i32> {
    static FD: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    let r = FD.get_or_init(|| {
        let data = blob();
        let mut attr = [0u8; 32];
        attr[..8].copy_from_slice(&(data.as_ptr() as u64).to_le_bytes());
        attr[16..20].copy_from_slice(&(data.len() as u32).to_le_bytes());
        const BPF_BTF_LOAD: libc::c_long = 18;
        bpf(BPF_BTF_LOAD, &attr).map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    });
    match r {
        Ok(fd) => Ok(std::os::fd::AsRawFd::as_raw_fd(fd)),
        Err(e) => Err(io::Error::from_raw_os_error(*e)),
    }
}

fn array_of(size: u32) -> io::Result<u32> {
    SIZES
        .iter()
        .position(|s| *s == size)
        .map(|i| 4 + 2 * i as u32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Value type: u64 as an integer (the hit counters), others as structs
/// (every other value in the program is one).
fn value_type(size: u32) -> io::Result<u32> {
    if size == 8 {
        Ok(U64)
    } else {
        array_of(size).map(|a| a + 1)
    }
}

/// A new map of `map_type` named `name` (at most 15 bytes), with BTF.
pub fn create(
    map_type: u32,
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> io::Result<Map> {
    let key_type = if map_type == BPF_MAP_TYPE_ARRAY {
        U32
    } else {
        array_of(key_size)?
    };
    let mut attr = [0u8; 72];
    for (off, v) in [
        (0, map_type),
        (4, key_size),
        (8, value_size),
        (12, max_entries),
        (16, flags),
        (48, btf_fd()? as u32),
        (52, key_type),
        (56, value_type(value_size)?),
    ] {
        attr[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    let n = name.len().min(15);
    attr[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
    const BPF_MAP_CREATE: libc::c_long = 0;
    let fd = bpf(BPF_MAP_CREATE, &attr)?;
    let data = MapData::from_fd(fd).map_err(io::Error::other)?;
    Map::from_map_data(data).map_err(io::Error::other)
}
