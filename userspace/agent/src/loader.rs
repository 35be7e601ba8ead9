//! Loading and pinning the program and its maps (attaching is `attach/`).
//!
//! Pins under the pin dir: `maps-v<ABI>/<MAP>` (the state), `links/<iface>`
//! (see `attach/`), `prog` (for inspection with bpftool).
//!
//! A new agent adopts existing pins: maps are reused as they are, so the
//! state survives a restart or an upgrade.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use c2wall_common::*;

use crate::config::{Capacity, HookArg};
use crate::error::AgentError;
use crate::kernel::KernelMaps;
use crate::paths::{is_bpffs, Paths, BPFFS_ROOT};

/// The XDP object built by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/c2wall-xdp"));
/// The naive two-LPM baseline, for the benchmark only.
pub static NAIVE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/c2wall-naive"));

/// Mounts bpffs on /sys/fs/bpf unless it is there; true if it mounted.
/// mount(2) directly, not mount(8): the container image has no mount
/// binary, and the Kubernetes init step runs this (`c2wall-agent
/// mount-bpffs`).
pub fn mount_bpffs() -> Result<bool, AgentError> {
    let root = Path::new(BPFFS_ROOT);
    if is_bpffs(root) {
        return Ok(false);
    }
    tracing::info!("mounting bpffs on {BPFFS_ROOT}");
    fs::create_dir_all(root).map_err(|e| AgentError::Bpffs(format!("{BPFFS_ROOT}: {e}")))?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a literal");
    let (src, target, fstype) = (c("bpf"), c(BPFFS_ROOT), c("bpf"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(AgentError::Bpffs(format!(
            "mounting bpffs on {BPFFS_ROOT}: {} (needs CAP_SYS_ADMIN; mount it on the host, \
             or let the Kubernetes init step do it)",
            std::io::Error::last_os_error()
        )));
    }
    Ok(true)
}

/// Mounts bpffs if needed and checks that the pin dir is on it.
pub fn ensure_bpffs(pin_dir: &Path) -> Result<(), AgentError> {
    mount_bpffs()?;
    let parent = pin_dir.parent().unwrap_or(pin_dir);
    if !is_bpffs(parent) && !is_bpffs(pin_dir) {
        return Err(AgentError::Bpffs(format!(
            "pin dir {} is not on a bpf filesystem",
            pin_dir.display()
        )));
    }
    Ok(())
}

/// Loads the object, reusing or creating pinned maps, and loads the program
/// into the kernel (not yet attached).
pub fn load(
    paths: &Paths,
    cap: &Capacity,
    hook: HookArg,
) -> Result<(Ebpf, KernelMaps), AgentError> {
    ensure_bpffs(&paths.pin_dir)?;
    for d in [paths.pin_dir.clone(), paths.maps_dir(), paths.links_dir()] {
        fs::create_dir_all(&d).map_err(|source| AgentError::WriteFile { path: d, source })?;
    }
    let map_paths: Vec<_> = ALL_MAPS.iter().map(|m| (*m, paths.map(m))).collect();
    let mut loader = EbpfLoader::new();
    for (name, path) in &map_paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(OBJECT)?;
    match hook {
        HookArg::Xdp => xdp_program(&mut ebpf)?.load()?,
        HookArg::Tc | HookArg::TcClsact => tc_program(&mut ebpf)?.load()?,
    }
    // The rule maps are sized by each reload (within `cap`), so a changed
    // capacity applies at the next reload, pinned maps or not.
    let maps_dir = paths.maps_dir();
    let maps = KernelMaps::new(|n| ebpf.take_map(n), *cap, Some(&maps_dir))?;
    Ok((ebpf, maps))
}

/// Unpins maps of other ABI versions once every link runs the current program
/// (nothing references them any more).
pub fn remove_stale_maps(paths: &Paths) -> Vec<PathBuf> {
    let current = paths.maps_dir();
    let mut removed = Vec::new();
    let Ok(dir) = fs::read_dir(&paths.pin_dir) else {
        return removed;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p != current && name.starts_with("maps-v") && p.is_dir() {
            if let Ok(inner) = fs::read_dir(&p) {
                for f in inner.flatten() {
                    let _ = fs::remove_file(f.path());
                }
            }
            if fs::remove_dir(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

pub fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, AgentError> {
    let p = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(AgentError::MissingMap(PROGRAM_NAME))?;
    Ok(p.try_into()?)
}

pub fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, AgentError> {
    let p = ebpf
        .program_mut(TC_PROGRAM_NAME)
        .ok_or(AgentError::MissingMap(TC_PROGRAM_NAME))?;
    Ok(p.try_into()?)
}

/// The index of a network interface in this network namespace, or an error
/// naming it.
pub fn interface_index(name: &str) -> Result<u32, AgentError> {
    let err = |message: &str| AgentError::Interface {
        name: name.to_string(),
        message: message.to_string(),
    };
    let c = std::ffi::CString::new(name).map_err(|_| err("contains a NUL byte"))?;
    // SAFETY: c is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(err(
            "no such interface in this network namespace (see `ip link`)",
        )),
        i => Ok(i),
    }
}

/// Pins the loaded program (replacing an older pin) so `bpftool` can find it.
pub fn pin_program(ebpf: &mut Ebpf, paths: &Paths, hook: HookArg) -> Result<(), AgentError> {
    let path = paths.program();
    let _ = fs::remove_file(&path);
    let pinned = match hook {
        HookArg::Xdp => xdp_program(ebpf)?.pin(&path),
        HookArg::Tc | HookArg::TcClsact => tc_program(ebpf)?.pin(&path),
    };
    pinned.map_err(|source| AgentError::Pin { path, source })
}

/// Removes every pin: links (detaching the program), program and maps.
pub fn detach_all(paths: &Paths) -> Result<Vec<String>, AgentError> {
    if !paths.pin_dir.exists() {
        return Ok(Vec::new());
    }
    let detached = crate::attach::detach_stale(paths, &[]);
    let _ = fs::remove_file(paths.program());
    if let Ok(dir) = fs::read_dir(&paths.pin_dir) {
        for e in dir.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(inner) = fs::read_dir(&p) {
                    for f in inner.flatten() {
                        let _ = fs::remove_file(f.path());
                    }
                }
                let _ = fs::remove_dir(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
    fs::remove_dir(&paths.pin_dir).map_err(|source| AgentError::WriteFile {
        path: paths.pin_dir.clone(),
        source,
    })?;
    Ok(detached)
}

/// Loads an object with fresh, unpinned maps (gone when dropped) and loads its
/// XDP program `prog`: for BPF_PROG_TEST_RUN tests and the benchmark.
pub fn load_unpinned(object: &[u8], prog: &str) -> Result<Ebpf, AgentError> {
    let mut ebpf = EbpfLoader::new().load(object)?;
    let p: &mut Xdp = ebpf
        .program_mut(prog)
        .ok_or(AgentError::MissingMap(PROGRAM_NAME))?
        .try_into()?;
    p.load()?;
    Ok(ebpf)
}

/// As [`load_unpinned`] for the tc entry point of the program.
pub fn load_unpinned_tc() -> Result<Ebpf, AgentError> {
    let mut ebpf = EbpfLoader::new().load(OBJECT)?;
    tc_program(&mut ebpf)?.load()?;
    Ok(ebpf)
}

/// The kernel maps of an object loaded with [`load_unpinned`].
/// `cap`: the upper limits of the rule maps' sizes.
pub fn take_maps(ebpf: &mut Ebpf, cap: &Capacity) -> Result<KernelMaps, AgentError> {
    KernelMaps::new(|n| ebpf.take_map(n), *cap, None)
}
