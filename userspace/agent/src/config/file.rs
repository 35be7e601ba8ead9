//! The TOML config file and the map capacities it may set.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::values::{AttachArg, HookArg, ModeArg, XdpModeArg};
use crate::error::AgentError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) interfaces: Vec<String>,
    pub(super) xdp_mode: Option<XdpModeArg>,
    pub(super) attach: Option<AttachArg>,
    pub(super) attach_hook: Option<HookArg>,
    #[serde(default)]
    pub(super) blocklists: Vec<PathBuf>,
    pub(super) allowlist: Option<PathBuf>,
    pub(super) mode: Option<ModeArg>,
    pub(super) metrics_addr: Option<SocketAddr>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) pin_dir: Option<PathBuf>,
    pub(super) detach_on_exit: Option<bool>,
    /// One URL, several separated by commas, or an array.
    pub(super) coordinator: Option<c2wall_model::wire::Urls>,
    pub(super) agent_id: Option<String>,
    /// `labels = { site = "tokyo-1", role = "canary" }`
    #[serde(default)]
    pub(super) labels: c2wall_model::Labels,
    pub(super) sample_budget: Option<u32>,
    pub(super) sightings_clear: Option<bool>,
    pub(super) sightings_retention: Option<u64>,
    pub(super) sightings_max: Option<usize>,
    pub(super) report_interval: Option<u64>,
    pub(super) sync_unready_after: Option<u64>,
    #[serde(default)]
    pub(super) trusted_keys: Vec<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) tls_ca: Option<PathBuf>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) insecure: Option<bool>,
    #[serde(default)]
    pub(super) capacity: Capacity,
    #[serde(default)]
    pub(super) follow: crate::follow::table::Limits,
}

/// Upper limits of the maps (slots). Each reload sizes the maps of the rule
/// set it fills to its list, never above these; a change applies at the next
/// reload. `hits`: hit-counter slots, one per listed entry.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    pub nodes_v4: u32,
    pub nodes_v6: u32,
    pub ports: u32,
    pub hits: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            nodes_v4: c2wall_common::DEFAULT_NODES_V4_CAPACITY,
            nodes_v6: c2wall_common::DEFAULT_NODES_V6_CAPACITY,
            ports: c2wall_common::DEFAULT_PORTS_CAPACITY,
            hits: c2wall_common::DEFAULT_MAX_ENTRY_IDS,
        }
    }
}

pub(super) fn load_file(path: &Path) -> Result<FileConfig, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadFile {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| AgentError::Config {
        path: path.into(),
        message: e.to_string(),
    })
}
