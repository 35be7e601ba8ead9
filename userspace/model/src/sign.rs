//! Signed versions: the coordinator signs each version's set digest with
//! Ed25519; agents configured with the public key(s) accept a snapshot or
//! delta only if the set it produces carries a valid signature, so a relay or
//! a man in the middle cannot add or remove a single entry (it can compute a
//! digest, not a signature). Several trusted keys allow rotation with an
//! overlap: trust the new key, switch the coordinator, drop the old key.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// What is signed: a domain tag, the store's lineage, the version, the set
/// digest. The lineage binds a version to the store that made it, so a
/// version of a replaced or restored store cannot pass for the original's.
fn message(lineage: &[u8], version: u64, digest: &[u8]) -> Vec<u8> {
    let mut m = b"c2wall.v1 set digest\0".to_vec();
    m.push(lineage.len() as u8);
    m.extend_from_slice(lineage);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(digest);
    m
}

/// What a lineage move signs: subscribers of `from` (up to `from_version`)
/// may follow `to`.
fn move_message(from: &[u8], from_version: u64, to: &[u8]) -> Vec<u8> {
    let mut m = b"c2wall.v1 lineage move\0".to_vec();
    m.push(from.len() as u8);
    m.extend_from_slice(from);
    m.extend_from_slice(&from_version.to_be_bytes());
    m.push(to.len() as u8);
    m.extend_from_slice(to);
    m
}

pub struct Signer32(SigningKey);

impl Signer32 {
    /// From a 32-byte seed (the key file's content, raw or hex).
    pub fn from_seed(bytes: &[u8]) -> Result<Self, String> {
        let seed = decode32(bytes)?;
        Ok(Signer32(SigningKey::from_bytes(&seed)))
    }
    /// A new key from the kernel's random source.
    pub fn generate() -> ([u8; 32], Self) {
        let seed = random32();
        (seed, Signer32(SigningKey::from_bytes(&seed)))
    }
    pub fn sign(&self, lineage: &[u8], version: u64, digest: &[u8]) -> Vec<u8> {
        self.0
            .sign(&message(lineage, version, digest))
            .to_bytes()
            .to_vec()
    }
    pub fn sign_move(&self, from: &[u8], from_version: u64, to: &[u8]) -> Vec<u8> {
        self.0
            .sign(&move_message(from, from_version, to))
            .to_bytes()
            .to_vec()
    }
    /// The public key, hex: what agents are configured with.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }
}

/// 32 bytes from the kernel's random source (keys, tokens).
pub fn random32() -> [u8; 32] {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 32 bytes given raw or as 64 hex digits (surrounding whitespace ignored).
fn decode32(bytes: &[u8]) -> Result<[u8; 32], String> {
    if bytes.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(bytes);
        return Ok(k);
    }
    let s = std::str::from_utf8(bytes)
        .map_err(|_| "a key is 32 bytes or 64 hex digits".to_string())?
        .trim();
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "a key is 32 bytes or 64 hex digits, found {} characters",
            s.len()
        ));
    }
    let mut k = [0u8; 32];
    for (i, k) in k.iter_mut().enumerate() {
        *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("checked");
    }
    Ok(k)
}

/// Public keys an agent trusts.
#[derive(Clone, Default)]
pub struct Trust(Vec<VerifyingKey>);

impl Trust {
    /// From hex public keys; an invalid one is an error naming it.
    pub fn from_hex<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for k in keys {
            let b = decode32(k.as_bytes()).map_err(|e| format!("trusted key `{k}`: {e}"))?;
            out.push(VerifyingKey::from_bytes(&b).map_err(|e| format!("trusted key `{k}`: {e}"))?);
        }
        Ok(Trust(out))
    }
    /// No keys: signatures are not checked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether `signature` over (lineage, version, digest) is by a trusted key.
    pub fn verify(&self, lineage: &[u8], version: u64, digest: &[u8], signature: &[u8]) -> bool {
        self.verify_message(&message(lineage, version, digest), signature)
    }
    /// Whether `signature` over a lineage move is by a trusted key.
    pub fn verify_move(&self, from: &[u8], from_version: u64, to: &[u8], signature: &[u8]) -> bool {
        self.verify_message(&move_message(from, from_version, to), signature)
    }
    fn verify_message(&self, m: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.iter().any(|k| k.verify(m, &sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_version_and_digest_and_rotation_overlaps() {
        let (_, old) = Signer32::generate();
        let (seed, new) = Signer32::generate();
        let again = Signer32::from_seed(hex(&seed).as_bytes()).unwrap();
        assert_eq!(again.public_hex(), new.public_hex());
        let both = Trust::from_hex([old.public_hex().as_str(), new.public_hex().as_str()]).unwrap();
        let only_new = Trust::from_hex([new.public_hex().as_str()]).unwrap();
        let d = [7u8; 32];
        let l = [1u8; 16];
        let s = old.sign(&l, 5, &d);
        assert!(both.verify(&l, 5, &d, &s));
        assert!(!only_new.verify(&l, 5, &d, &s), "the old key, once dropped");
        assert!(!both.verify(&l, 6, &d, &s), "bound to the version");
        assert!(!both.verify(&l, 5, &[8u8; 32], &s), "bound to the digest");
        assert!(!both.verify(&[2u8; 16], 5, &d, &s), "bound to the lineage");
        assert!(!both.verify(&l, 5, &d, b"short"));
        let m = new.sign_move(&l, 9, &[2u8; 16]);
        assert!(only_new.verify_move(&l, 9, &[2u8; 16], &m));
        assert!(!only_new.verify_move(&l, 10, &[2u8; 16], &m));
        assert!(
            !only_new.verify(&l, 9, &[2u8; 16], &m),
            "a move is no version"
        );
        assert!(Trust::from_hex(["abc"]).is_err());
    }
}
