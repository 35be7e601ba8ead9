//! The c2wall gRPC API. The code under `generated/` is produced from
//! `c2wall/v1/c2wall.proto` and committed, so building needs no `protoc`;
//! `tests/bootstrap.rs` regenerates it and fails if it differs.

#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v1 {
    include!("generated/c2wall.v1.rs");
}
