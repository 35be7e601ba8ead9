//! Inner maps in the slots of arrays of maps: created typed, installed
//! (and pinned), read back (trusted only if the pin names the map the slot
//! holds), and slots emptied. Privilege-free: a slot's lookup from
//! userspace returns the inner map's id.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, ArrayOfMaps, HashMap as BpfHashMap, IterableMap, Map, MapData, MapError};

use super::create;
use crate::error::AgentError;

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> AgentError {
    move |source| AgentError::Map { map, source }
}

/// The id of the inner map in slot `index` of `outer` (None: empty slot).
/// A lookup from userspace returns the id; it needs no privilege.
pub(super) fn slot_id(outer: &Map, index: u32) -> io::Result<Option<u32>> {
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    let mut id: u32 = 0;
    let found = slot_call(outer, BPF_MAP_LOOKUP_ELEM, index, Some(&mut id))?;
    Ok(found.then_some(id))
}

/// Empties slot `index` of an outer map, if it holds a map (which is freed
/// once nothing else holds it).
pub(super) fn clear_slot(outer: &Map, index: u32) -> io::Result<()> {
    const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
    slot_call(outer, BPF_MAP_DELETE_ELEM, index, None).map(drop)
}

/// The element command `cmd` on slot `index` of an array of maps, the
/// slot's inner map id read into `value` (a lookup; None for a delete, whose
/// call must leave the field zero); false for an empty slot. Raw, because
/// aya's array of maps opens the inner map by id, which takes
/// CAP_SYS_ADMIN.
fn slot_call(
    outer: &Map,
    cmd: libc::c_long,
    index: u32,
    value: Option<&mut u32>,
) -> io::Result<bool> {
    let Map::ArrayOfMaps(data) = outer else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = ElemAttr {
        map_fd: data.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: &index as *const u32 as u64,
        value: value.map_or(0, |v| v as *mut u32 as u64),
        flags: 0,
    };
    // SAFETY: attr points at valid key and value buffers for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const ElemAttr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Ok(false),
        _ => Err(e),
    }
}

/// Pin path of the inner map of `outer_name` in slot `index`.
pub(super) fn inner_pin(dir: &Path, outer_name: &str, index: u32) -> PathBuf {
    dir.join(format!("{outer_name}-{index}"))
}

/// The inner map in slot `index` of an outer map, typed, if it can be
/// trusted: from its pin when the maps are pinned (and the pin names the
/// map in the slot), else by id.
pub(super) fn read_inner<V>(
    outer: &mut Map,
    name: &'static str,
    pins: Option<&Path>,
    index: u32,
) -> Option<V>
where
    V: TryFrom<Map, Error = MapError> + aya::maps::InnerMap,
    V: aya::maps::FromMapData,
{
    let in_slot = slot_id(outer, index).ok()??;
    match pins {
        Some(dir) => {
            let data = MapData::from_pin(inner_pin(dir, name, index)).ok()?;
            (data.info().ok()?.id() == in_slot).then_some(())?;
            V::try_from(Map::from_map_data(data).ok()?).ok()
        }
        None => {
            let view = ArrayOfMaps::<&mut MapData, V>::try_from(&mut *outer).ok()?;
            view.get(&index, 0).ok()
        }
    }
}

/// Puts `inner` in slot `index` of `outer` and, for pinned maps, pins it
/// (staged, then renamed over the old pin once the slot holds it).
pub(super) fn install_inner<V>(
    outer: &mut Map,
    name: &'static str,
    pins: Option<&Path>,
    index: u32,
    inner: &V,
) -> Result<(), AgentError>
where
    V: aya::maps::InnerMap + IterableMapData,
{
    let staged = pins.map(|dir| dir.join(format!("{name}-{index}-staged")));
    if let Some(path) = &staged {
        let _ = std::fs::remove_file(path);
        inner.data().pin(path).map_err(|source| AgentError::Pin {
            path: path.clone(),
            source,
        })?;
    }
    let mut view = ArrayOfMaps::<&mut MapData, V>::try_from(&mut *outer).map_err(map_err(name))?;
    view.set(index, inner, 0).map_err(map_err(name))?;
    if let (Some(dir), Some(path)) = (pins, staged) {
        let final_path = inner_pin(dir, name, index);
        std::fs::rename(&path, &final_path).map_err(|source| AgentError::WriteFile {
            path: final_path,
            source,
        })?;
    }
    Ok(())
}

/// A new inner map for outer map `map`, typed (key and value sizes from
/// the type), with BTF (see create.rs).
pub(super) fn new_inner<T>(
    map: &'static str,
    map_type: u32,
    name: &str,
    max_entries: u32,
    flags: u32,
) -> Result<T, AgentError>
where
    T: TryFrom<Map, Error = MapError> + InnerKv,
{
    let m = create::create(map_type, name, T::KEY, T::VALUE, max_entries, flags)
        .map_err(|source| AgentError::MapWrite { map, source })?;
    T::try_from(m).map_err(map_err(map))
}

/// Key and value sizes of a typed inner map.
pub(super) trait InnerKv {
    const KEY: u32;
    const VALUE: u32;
}

impl<K: aya::Pod, V: aya::Pod> InnerKv for BpfHashMap<MapData, K, V> {
    const KEY: u32 = std::mem::size_of::<K>() as u32;
    const VALUE: u32 = std::mem::size_of::<V>() as u32;
}

impl<V: aya::Pod> InnerKv for Array<MapData, V> {
    const KEY: u32 = 4;
    const VALUE: u32 = std::mem::size_of::<V>() as u32;
}

/// The MapData of a typed map, for pinning.
pub trait IterableMapData {
    fn data(&self) -> &MapData;
}

impl<K: aya::Pod, V: aya::Pod> IterableMapData for BpfHashMap<MapData, K, V> {
    fn data(&self) -> &MapData {
        self.map()
    }
}

impl<V: aya::Pod> IterableMapData for Array<MapData, V> {
    fn data(&self) -> &MapData {
        self.map()
    }
}
