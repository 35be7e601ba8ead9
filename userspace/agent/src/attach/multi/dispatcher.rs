//! libxdp's dispatcher (protocol version 2, xdp-tools' `protocol.org`): the
//! object Debian's libxdp ships, its configuration (a frozen .rodata map),
//! and recognising one that runs on an interface.
//!
//! We load libxdp's own compiled dispatcher rather than one of ours, so
//! xdp-loader and every other libxdp user sees exactly what it would have
//! made itself.

use std::path::PathBuf;

use aya::{
    maps::{Array, Map, MapData},
    programs::{ProgramFd, ProgramInfo, Xdp},
    Ebpf, EbpfLoader,
};

use crate::error::AgentError;

pub const MAX_SLOTS: usize = 10;
const MAGIC: u8 = 236;
const VERSION: u8 = 2;
/// What a stub slot returns; always a chain-call action, so a detached
/// component never ends the chain.
const RETVAL_BIT: u32 = 1 << 31;
pub const PROGRAM: &str = "xdp_dispatcher";
const OBJECT: &str = "xdp-dispatcher.o";

/// `struct xdp_dispatcher_config` (version 2), native byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub magic: u8,
    pub dispatcher_version: u8,
    pub num_progs_enabled: u8,
    pub is_xdp_frags: u8,
    pub chain_call_actions: [u32; MAX_SLOTS],
    pub run_prios: [u32; MAX_SLOTS],
    pub program_flags: [u32; MAX_SLOTS],
}

// SAFETY: repr(C), Copy, no pointers, no implicit padding (4 bytes, then
// u32 arrays).
unsafe impl aya::Pod for Config {}

/// One component as the configuration records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// XDP actions (bit per action) after which the next component runs.
    pub chain_call_actions: u32,
    pub run_prio: u32,
    pub program_flags: u32,
}

impl Config {
    pub fn new(slots: &[Slot]) -> Config {
        let mut c = Config {
            magic: MAGIC,
            dispatcher_version: VERSION,
            num_progs_enabled: slots.len() as u8,
            // Only if every component supports frags; ours does not.
            is_xdp_frags: 0,
            ..Default::default()
        };
        for (i, s) in slots.iter().enumerate() {
            c.chain_call_actions[i] = s.chain_call_actions | RETVAL_BIT;
            c.run_prios[i] = s.run_prio;
            c.program_flags[i] = s.program_flags;
        }
        c
    }

    pub fn slots(&self) -> Vec<Slot> {
        (0..(self.num_progs_enabled as usize).min(MAX_SLOTS))
            .map(|i| Slot {
                chain_call_actions: self.chain_call_actions[i] & !RETVAL_BIT,
                run_prio: self.run_prios[i],
                program_flags: self.program_flags[i],
            })
            .collect()
    }
}

/// Where libxdp looks for its objects: LIBXDP_OBJECT_PATH, then the
/// directories Debian and a source install use.
pub fn object_path() -> Result<PathBuf, AgentError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LIBXDP_OBJECT_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.push(format!("/usr/lib/{}-linux-gnu/bpf", std::env::consts::ARCH).into());
    dirs.push("/usr/lib/bpf".into());
    dirs.push("/usr/local/lib/bpf".into());
    dirs.iter()
        .map(|d| d.join(OBJECT))
        .find(|p| p.exists())
        .ok_or_else(|| {
            AgentError::Dispatcher(format!(
                "--attach multi needs libxdp's {OBJECT} (Debian package libxdp1), \
                 not found in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// A dispatcher for `slots`, loaded (not attached).
pub fn load(slots: &[Slot]) -> Result<Ebpf, AgentError> {
    let path = object_path()?;
    let bytes = std::fs::read(&path).map_err(|source| AgentError::ReadFile {
        path: path.clone(),
        source,
    })?;
    let config = Config::new(slots);
    let mut ebpf = EbpfLoader::new()
        .override_global("conf", &config, true)
        .load(&bytes)?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or(AgentError::MissingMap(PROGRAM))?
        .try_into()?;
    prog.load()?;
    Ok(ebpf)
}

pub fn program_fd(ebpf: &Ebpf) -> Result<&ProgramFd, AgentError> {
    let prog: &Xdp = ebpf
        .program(PROGRAM)
        .ok_or(AgentError::MissingMap(PROGRAM))?
        .try_into()?;
    Ok(prog.fd()?)
}

/// The configuration of the program `info` if it is a version-2 dispatcher
/// (None: a plain XDP program). A dispatcher of another version is an
/// error: libxdp refuses to rebuild those as well.
pub fn read_config(info: &ProgramInfo) -> Result<Option<Config>, AgentError> {
    if info.name_as_str() != Some(PROGRAM) {
        return Ok(None);
    }
    let ids = info.map_ids()?.unwrap_or_default();
    let [id] = ids[..] else {
        return Ok(None);
    };
    let data = MapData::from_id(id)?;
    let value_size = data.info()?.value_size();
    if value_size as usize != std::mem::size_of::<Config>() {
        return Err(AgentError::Dispatcher(format!(
            "the XDP dispatcher on this interface has a configuration of {value_size} bytes, \
             not libxdp's version 2; unload it with xdp-loader before joining"
        )));
    }
    let array: Array<MapData, Config> = Array::try_from(Map::Array(data))?;
    let c = array.get(&0, 0)?;
    if c.magic != MAGIC || c.dispatcher_version != VERSION {
        return Err(AgentError::Dispatcher(format!(
            "the XDP dispatcher on this interface is version {} (magic {}); c2wall speaks \
             version {VERSION}",
            c.dispatcher_version, c.magic
        )));
    }
    Ok(Some(c))
}
