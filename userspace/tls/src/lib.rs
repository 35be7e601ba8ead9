//! Transport security for c2wall: who is on the other end of a connection.
//!
//! - [`identity`]: the c2wall identity (role and name) a certificate carries,
//!   as a SAN URI `spiffe://c2wall/ROLE/NAME`.
//! - [`ca`]: a development certificate authority (`c2wall ca init|issue`).
//! - [`files`]: loading PEM files for tonic, with errors naming the file.
//!
//! The coordinator, the agent and the CLI take their TLS settings through this
//! crate so that all three check the same things the same way.

pub mod ca;
pub mod database;
pub mod error;
pub mod files;
pub mod identity;
pub mod serve;

pub use error::TlsError;
pub use files::{ClientTls, ServerTls};
pub use identity::CertIdentity;
