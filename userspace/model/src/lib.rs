//! Domain types shared by the agent, the coordinator and the CLI.
//!
//! Nothing here touches the kernel: the kernel layout lives in `c2wall-common`
//! and the translation in the agent's compiler.

mod domain;
mod entry;
mod error;
pub mod labels;
pub mod limits;
pub mod matcher;
mod mode;
pub mod parts;
mod prefix;
mod record;
pub mod sign;
pub mod special;
mod subscriber;
pub mod text;
pub mod wire;

pub use domain::{Domain, DomainName};
pub use entry::{parse_entry, Action, Direction, Entry, Identity, PortScope, Protocol, Target};
pub use error::ModelError;
pub use labels::{Labels, Selector};
pub use mode::{HeldKind, HeldState, Mode, Modes, Scope};
pub use prefix::{Family, Prefix};
pub use record::{
    effective, effective_set, upstream_source, Hop, Record, SetDigest, MAX_HOPS,
    UPSTREAM_SOURCE_PREFIX,
};
pub use subscriber::SubscriberKind;
