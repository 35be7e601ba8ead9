//! Keys and values of the rule maps.

/// [`Rule::action`]: no rule for this side.
pub const ACTION_NONE: u8 = 0;
/// [`Rule::action`]: count as would-drop and pass.
pub const ACTION_MONITOR: u8 = 1;
/// [`Rule::action`]: drop (when the global mode is enforce). Larger is stronger.
pub const ACTION_DROP: u8 = 2;

/// [`NodeValue::flags`]: port-scoped rules exist under this slot; look in
/// [`crate::MAP_PORTS`] when the packet has ports.
pub const NODE_HAS_PORTS: u32 = 1;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Key of a rule set's IPv4 node map (see [`crate::MAP_NODES_V4`]): one
/// expanded slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V4Key {
    /// Address masked to `level` bits, network byte order.
    pub addr: [u8; 4],
    /// Expansion level (0, 4, ..., 32).
    pub level: u8,
    pub _pad: [u8; 3],
}

/// Key of a rule set's IPv6 node map (see [`crate::MAP_NODES_V6`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V6Key {
    /// Address masked to `level` bits, network byte order.
    pub addr: [u8; 16],
    /// Expansion level (0, 8, ..., 128).
    pub level: u8,
    pub _pad: [u8; 3],
}

/// What one side of a packet (destination = towards C&C, source = from C&C)
/// matched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The entry (reported in drop events); 0 when `action` is [`ACTION_NONE`].
    pub entry_id: u32,
    /// The entry's slot in the hit-counter array ([`crate::MAP_HITS`]),
    /// given by userspace as the rule goes into the kernel.
    pub counter: u32,
    pub action: u8,
    pub _pad: [u8; 3],
}

/// Value of the node maps: the fully resolved verdict for addresses in this slot
/// (longest-prefix inheritance is done in userspace, so the kernel needs one hit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeValue {
    /// Applies when the slot matched the packet's destination.
    pub to_cc: Rule,
    /// Applies when the slot matched the packet's source.
    pub from_cc: Rule,
    /// [`NODE_HAS_PORTS`].
    pub flags: u32,
    pub _pad: u32,
}

/// Key of a rule set's port map (see [`crate::MAP_PORTS`]): a slot plus the
/// C&C-side protocol and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    /// Slot address, network byte order; IPv4 uses the first 4 bytes, rest zero.
    pub addr: [u8; 16],
    pub level: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    pub _pad0: u8,
    /// Port, network byte order.
    pub port: [u8; 2],
    pub _pad: [u8; 2],
}

/// Value of [`crate::MAP_PORTS`]. A side whose action is [`ACTION_NONE`] falls
/// back to the slot's address rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortValue {
    pub to_cc: Rule,
    pub from_cc: Rule,
}
