//! c2wall edge agent library: everything but the process edge (main.rs).

pub mod apply;
pub mod attach;
pub mod combine;
pub mod compile;
pub mod config;
pub mod dataplane;
pub mod engine;
pub mod error;
pub mod events;
pub mod fastmap;
pub mod follow;
pub mod ids;
pub mod kernel;
pub mod loader;
pub mod metrics;
mod ops;
pub mod paths;
pub mod ring;
pub mod sightings;
pub mod sim;
pub mod sizing;
pub mod source;
pub mod sync;

pub use error::AgentError;
