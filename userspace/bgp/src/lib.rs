//! c2wall-bgp: a subscriber of the coordinator's signed stream (the same
//! client an edge agent runs, `c2wall-subscriber`) that keeps border
//! routers equal to the list, as an agent keeps its kernel maps. BGP itself
//! is BIRD 2's: the exporter writes BIRD's configuration (static blackhole
//! routes and flow rules per peer), starts and supervises `bird`, and asks
//! it to reconfigure on each verified version; BIRD computes and sends the
//! difference. Data flows one way: stream -> `routes` (mapping, floors,
//! ceiling) -> `bird` (config, reconfigure, sessions) -> routers.

pub mod bird;
pub mod config;
pub mod error;
pub mod exporter;
pub mod metrics;
pub mod routes;
pub mod watchdog;

pub use error::BgpError;
