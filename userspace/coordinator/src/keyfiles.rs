//! Key files the coordinator's subcommands create: the version-signing key
//! (`keygen`) and the RPZ transfer key (`tsig-keygen`). Both are created new
//! (an existing file is never overwritten), mode 0600, and synced.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::CoordError;
use crate::rpz::key::Key;

fn create(out: &Path, contents: &[u8]) -> Result<(), CoordError> {
    let err = |e: std::io::Error| {
        CoordError::Setting(format!(
            "creating {} (it must not exist): {e}",
            out.display()
        ))
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)
}

/// A new Ed25519 version-signing key; returns its public key (hex), which
/// agents are given with --trust-key.
pub fn signing_key(out: &Path) -> Result<String, CoordError> {
    let (seed, signer) = c2wall_model::sign::Signer32::generate();
    create(
        out,
        format!("{}\n", c2wall_model::sign::hex(&seed)).as_bytes(),
    )?;
    Ok(signer.public_hex())
}

/// A new TSIG key named `name`, in BIND's key-file format.
pub fn tsig_key(name: &str, out: &Path) -> Result<Key, CoordError> {
    let key = Key::generate(name)?;
    create(out, key.to_bind().as_bytes())?;
    Ok(key)
}
