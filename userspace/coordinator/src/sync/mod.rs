//! The coordinator's half of the sync protocol, in one place: framing
//! (`frame`), the fan-out of committed versions (`fanout`), what a
//! subscriber is sent first (`plan`), catch-ups over several versions
//! (`squash`), the subscribe loop (`stream`) with its rollout ceiling, agents'
//! reports (`reports`) and the gRPC server that carries them (`server`).
//! Data flows one way: the core commits and tells the fan-out
//! ([`crate::core::OnCommit`]); nothing in the core knows of streams.

pub mod fanout;
pub mod frame;
pub mod plan;
mod reports;
mod server;
pub mod squash;
mod stream;

pub use server::{AgentSyncServer, PassThrough};
