//! Feeds the coordinator pulls on a schedule and imports (see
//! [`crate::import`]): configuration, fetching, the pull loop.

pub mod config;
pub mod fetch;
pub mod runner;

pub use config::FeedConfig;
pub use runner::{Board, Runner};
