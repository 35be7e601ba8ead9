//! TSIG (RFC 8945) with HMAC-SHA256 over the raw message bytes: request
//! verification, and signing of single and multi-message responses. Done on
//! bytes rather than parsed messages because the MAC covers the message
//! exactly as it was sent.

use hmac::Mac;

pub use super::key::Key;

/// RR type TSIG.
const TYPE_TSIG: u16 = 250;
/// Class ANY.
const CLASS_ANY: u16 = 255;
pub use super::key::ALGORITHM;
/// Seconds of clock difference accepted (RFC 8945 recommends 300).
pub const FUDGE: u16 = 300;

/// Why a signed request was not accepted (RFC 8945 5.2): the TSIG error
/// code a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigError {
    BadSig,
    BadKey,
    BadTime,
}

impl TsigError {
    pub fn code(self) -> u16 {
        match self {
            TsigError::BadSig => 16,
            TsigError::BadKey => 17,
            TsigError::BadTime => 18,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TsigError::BadSig => "bad_signature",
            TsigError::BadKey => "bad_key",
            TsigError::BadTime => "bad_time",
        }
    }
}

/// What a request carried: nothing, or a TSIG that verified (its MAC
/// chains into the response's), or one that did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    No,
    Yes { mac: Vec<u8> },
    Bad(TsigError),
}

/// A name in canonical wire form (lower case, uncompressed).
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    out
}

/// Reads a (possibly compressed) name at `at`; returns it in presentation
/// form (lower case, no final dot) and the offset after it in the record.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(at)? as usize;
        if len & 0xc0 == 0xc0 {
            let ptr = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            if ptr >= at {
                return None; // pointers only go backwards: no loops
            }
            at = ptr;
            continue;
        }
        if len == 0 {
            return Some((labels.join(".").to_ascii_lowercase(), end.unwrap_or(at + 1)));
        }
        let label = msg.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + len;
    }
    None
}

/// Where the message's TSIG record starts, and its fields, if its last
/// additional record is one.
struct Found {
    start: usize,
    key: String,
    algorithm: String,
    time: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
}

fn find(msg: &[u8]) -> Result<Option<Found>, ()> {
    let count = |i: usize| -> Result<usize, ()> {
        Ok(u16::from_be_bytes([*msg.get(i).ok_or(())?, *msg.get(i + 1).ok_or(())?]) as usize)
    };
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at).ok_or(())?.1 + 4;
    }
    let total = an + ns + ar;
    for i in 0..total {
        let start = at;
        let (owner, after) = read_name(msg, at).ok_or(())?;
        let ty = count(after)? as u16;
        let rdlen = count(after + 8)?;
        let rdata = after + 10;
        at = rdata + rdlen;
        if at > msg.len() {
            return Err(());
        }
        if ty != TYPE_TSIG {
            continue;
        }
        if i + 1 != total || ar == 0 {
            return Err(()); // a TSIG anywhere but last is malformed
        }
        let (algorithm, p) = read_name(msg, rdata).ok_or(())?;
        let b = msg.get(p..at).ok_or(())?;
        if b.len() < 10 {
            return Err(());
        }
        let time = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let fudge = u16::from_be_bytes([b[6], b[7]]);
        let mac_len = u16::from_be_bytes([b[8], b[9]]) as usize;
        let mac = b.get(10..10 + mac_len).ok_or(())?.to_vec();
        let r = b.get(10 + mac_len..).ok_or(())?;
        if r.len() < 6 {
            return Err(());
        }
        let original_id = u16::from_be_bytes([r[0], r[1]]);
        let error = u16::from_be_bytes([r[2], r[3]]);
        let other_len = u16::from_be_bytes([r[4], r[5]]) as usize;
        let other = r.get(6..6 + other_len).ok_or(())?.to_vec();
        return Ok(Some(Found {
            start,
            key: owner,
            algorithm,
            time,
            fudge,
            mac,
            original_id,
            error,
            other,
        }));
    }
    Ok(None)
}

/// The TSIG variables the MAC covers after the message (RFC 8945 4.3.3).
fn variables(key: &str, time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut v = wire_name(key);
    v.extend(CLASS_ANY.to_be_bytes());
    v.extend(0u32.to_be_bytes());
    v.extend(wire_name(ALGORITHM));
    v.extend(&time.to_be_bytes()[2..]);
    v.extend(fudge.to_be_bytes());
    v.extend(error.to_be_bytes());
    v.extend((other.len() as u16).to_be_bytes());
    v.extend(other);
    v
}

/// The message without its TSIG record: ARCOUNT one less, the original ID.
fn unsigned(msg: &[u8], f: &Found) -> Vec<u8> {
    let mut m = msg[..f.start].to_vec();
    let ar = u16::from_be_bytes([m[10], m[11]]) - 1;
    m[10..12].copy_from_slice(&ar.to_be_bytes());
    m[0..2].copy_from_slice(&f.original_id.to_be_bytes());
    m
}

/// Checks a request's TSIG against `key` at `now` (unix seconds). A
/// malformed TSIG is a bad signature.
pub fn verify_request(msg: &[u8], key: Option<&Key>, now: u64) -> Signed {
    let f = match find(msg) {
        Ok(None) => return Signed::No,
        Ok(Some(f)) => f,
        Err(()) => return Signed::Bad(TsigError::BadSig),
    };
    let Some(key) = key else {
        return Signed::Bad(TsigError::BadKey);
    };
    if f.key != key.name || f.algorithm != ALGORITHM {
        return Signed::Bad(TsigError::BadKey);
    }
    let mut mac = key.mac();
    mac.update(&unsigned(msg, &f));
    mac.update(&variables(&f.key, f.time, f.fudge, f.error, &f.other));
    if mac.verify_slice(&f.mac).is_err() {
        return Signed::Bad(TsigError::BadSig);
    }
    if now.abs_diff(f.time) > f.fudge as u64 {
        return Signed::Bad(TsigError::BadTime);
    }
    Signed::Yes { mac: f.mac }
}

/// Appends a TSIG record with `mac_value` to `msg` (ARCOUNT one more).
fn append(msg: &mut Vec<u8>, key: &Key, time: u64, mac_value: &[u8]) {
    let id = [msg[0], msg[1]];
    let mut rdata = wire_name(ALGORITHM);
    rdata.extend(&time.to_be_bytes()[2..]);
    rdata.extend(FUDGE.to_be_bytes());
    rdata.extend((mac_value.len() as u16).to_be_bytes());
    rdata.extend(mac_value);
    rdata.extend(id);
    rdata.extend(0u16.to_be_bytes()); // error
    rdata.extend(0u16.to_be_bytes()); // other len
    msg.extend(wire_name(&key.name));
    msg.extend(TYPE_TSIG.to_be_bytes());
    msg.extend(CLASS_ANY.to_be_bytes());
    msg.extend(0u32.to_be_bytes());
    msg.extend((rdata.len() as u16).to_be_bytes());
    msg.extend(rdata);
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Signs the messages of one response in order: the first covers the
/// request's MAC and all TSIG variables, each later one the previous MAC
/// and the timers only (RFC 8945 5.3.1), as transfer clients check them.
pub struct ResponseSigner<'a> {
    key: &'a Key,
    previous: Vec<u8>,
    first: bool,
    time: u64,
}

impl<'a> ResponseSigner<'a> {
    pub fn new(key: &'a Key, request_mac: Vec<u8>, now: u64) -> Self {
        ResponseSigner {
            key,
            previous: request_mac,
            first: true,
            time: now,
        }
    }

    pub fn sign(&mut self, msg: &mut Vec<u8>) {
        let mut mac = self.key.mac();
        mac.update(&(self.previous.len() as u16).to_be_bytes());
        mac.update(&self.previous);
        mac.update(msg);
        if self.first {
            mac.update(&variables(&self.key.name, self.time, FUDGE, 0, &[]));
        } else {
            mac.update(&self.time.to_be_bytes()[2..]);
            mac.update(&FUDGE.to_be_bytes());
        }
        let value = mac.finalize().into_bytes().to_vec();
        append(msg, self.key, self.time, &value);
        self.previous = value;
        self.first = false;
    }
}

/// Signs a request (a client's transfer request; the tests use it).
pub fn sign_request(msg: &mut Vec<u8>, key: &Key, now: u64) {
    let mut mac = key.mac();
    mac.update(msg);
    mac.update(&variables(&key.name, now, FUDGE, 0, &[]));
    let value = mac.finalize().into_bytes().to_vec();
    append(msg, key, now, &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new("c2wall-rpz", vec![7u8; 32]).unwrap()
    }

    fn query() -> Vec<u8> {
        // ID 0x1234, one question: c2wall.rpz. AXFR IN.
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend(wire_name("c2wall.rpz"));
        m.extend(252u16.to_be_bytes());
        m.extend(1u16.to_be_bytes());
        m
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let k = key();
        let mut m = query();
        sign_request(&mut m, &k, 1_000_000);
        assert!(matches!(
            verify_request(&m, Some(&k), 1_000_010),
            Signed::Yes { .. }
        ));
        assert_eq!(
            verify_request(&m, Some(&k), 1_000_000 + 301),
            Signed::Bad(TsigError::BadTime)
        );
        let other = Key::new("c2wall-rpz", vec![8u8; 32]).unwrap();
        assert_eq!(
            verify_request(&m, Some(&other), 1_000_000),
            Signed::Bad(TsigError::BadSig)
        );
        let renamed = Key::new("other", vec![7u8; 32]).unwrap();
        assert_eq!(
            verify_request(&m, Some(&renamed), 1_000_000),
            Signed::Bad(TsigError::BadKey)
        );
        let mut tampered = m.clone();
        tampered[13] ^= 1;
        assert_eq!(
            verify_request(&tampered, Some(&k), 1_000_000),
            Signed::Bad(TsigError::BadSig)
        );
        assert_eq!(verify_request(&query(), Some(&k), 0), Signed::No);
        // A truncated TSIG is refused, never a panic.
        for cut in 1..40 {
            let short = &m[..m.len() - cut];
            assert!(!matches!(
                verify_request(short, Some(&k), 1_000_000),
                Signed::Yes { .. }
            ));
        }
    }
}
