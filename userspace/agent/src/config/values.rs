//! The enumerated settings: how to attach, which hook, the global mode.

use clap::ValueEnum;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Driver mode; fails on interfaces whose driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
    /// Native where the driver supports it, generic otherwise.
    #[default]
    Auto,
}

/// Whether the XDP program has the interface to itself or shares it with
/// other XDP programs through the libxdp dispatcher (xdp-tools' protocol).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachArg {
    /// Alone, through a BPF link: no other XDP program can attach beside it.
    Exclusive,
    /// As one component of the libxdp multi-program dispatcher, beside
    /// programs loaded by xdp-loader or other libxdp users.
    Multi,
    /// Join the dispatcher when one is on the interface; at tc ingress
    /// beside a program that holds XDP alone; alone otherwise.
    #[default]
    Auto,
}

impl AttachArg {
    pub fn name(self) -> &'static str {
        match self {
            AttachArg::Exclusive => "exclusive",
            AttachArg::Multi => "multi",
            AttachArg::Auto => "auto",
        }
    }
}

/// Where in the receive path the verdict runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookArg {
    /// XDP: before the kernel allocates anything for the packet (the fast one).
    #[default]
    Xdp,
    /// tc ingress, for interfaces where XDP cannot attach: tcx where the
    /// kernel has it (6.6 and later), the clsact qdisc otherwise.
    Tc,
    /// tc ingress through the clsact qdisc even where tcx exists (for tools
    /// that only list `tc filter show` filters).
    TcClsact,
}

impl HookArg {
    pub fn name(self) -> &'static str {
        match self {
            HookArg::Xdp => "xdp",
            HookArg::Tc => "tc",
            HookArg::TcClsact => "tc-clsact",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Drop packets that match drop entries.
    #[default]
    Enforce,
    /// Drop nothing; count what would have been dropped.
    Monitor,
    /// Pass everything without lookups (kill switch).
    Off,
}

impl From<c2wall_model::Mode> for ModeArg {
    fn from(m: c2wall_model::Mode) -> Self {
        match m {
            c2wall_model::Mode::Off => ModeArg::Off,
            c2wall_model::Mode::Monitor => ModeArg::Monitor,
            c2wall_model::Mode::Enforce => ModeArg::Enforce,
        }
    }
}

impl ModeArg {
    /// `off`, `monitor`, `enforce`.
    pub fn parse(s: &str) -> Option<Self> {
        ModeArg::from_str(s, true).ok()
    }
    pub fn code(self) -> u32 {
        match self {
            ModeArg::Enforce => c2wall_common::MODE_ENFORCE,
            ModeArg::Monitor => c2wall_common::MODE_MONITOR,
            ModeArg::Off => c2wall_common::MODE_OFF,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ModeArg::Enforce => "enforce",
            ModeArg::Monitor => "monitor",
            ModeArg::Off => "off",
        }
    }
}
