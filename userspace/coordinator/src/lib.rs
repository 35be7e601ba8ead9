//! c2wall coordinator: one versioned blocklist, durable, served to agents.

pub mod admin;
pub mod alloc;
pub mod auth;
pub mod config;
pub mod core;
pub mod error;
pub mod feeds;
pub mod guards;
pub mod highwater;
pub mod import;
pub mod integrity;
pub mod keyfiles;
pub mod killswitch;
pub mod limits;
pub mod metrics;
pub mod origin;
mod queries;
pub mod rollout;
pub mod rpz;
mod schedule;
pub mod service;
pub mod sightings;
pub mod state;
pub mod store;
pub mod sync;
pub mod upstream;

pub use error::CoordError;
