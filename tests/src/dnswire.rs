//! DNS messages written by hand, byte by byte, for the program's tests:
//! well-formed responses (compressed names, several answers, CNAME chains)
//! and the malformed shapes a hostile network can send.

/// A name in wire format (labels, then the root). Labels are written as
/// given: no check, so a test can build over-long ones.
pub fn name(n: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in n.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// One answer record.
pub enum Rr {
    /// An A record owned by the question name (a pointer to offset 12).
    A([u8; 4], u32),
    Aaaa([u8; 16], u32),
    /// The question name is an alias of this name; the next A record of
    /// `then` is owned by it (a pointer to where the CNAME's data starts).
    CnameThenA(&'static str, u32, [u8; 4], u32),
}

/// A successful response to an A query for `qname` with `answers`.
pub fn response(qname: &str, answers: &[Rr]) -> Vec<u8> {
    let mut count = 0u16;
    for a in answers {
        count += match a {
            Rr::CnameThenA(..) => 2,
            _ => 1,
        };
    }
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    m.extend_from_slice(&count.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend(name(qname));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for a in answers {
        match a {
            Rr::A(ip, ttl) => record(&mut m, &[0xc0, 12], 1, *ttl, ip),
            Rr::Aaaa(ip, ttl) => record(&mut m, &[0xc0, 12], 28, *ttl, ip),
            Rr::CnameThenA(target, ttl, ip, ttl2) => {
                let data_at = m.len() + 12;
                record(&mut m, &[0xc0, 12], 5, *ttl, &name(target));
                let ptr = [0xc0 | (data_at >> 8) as u8, data_at as u8];
                record(&mut m, &ptr, 1, *ttl2, ip);
            }
        }
    }
    m
}

fn record(m: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) {
    m.extend_from_slice(owner);
    m.extend_from_slice(&rtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    m.extend_from_slice(data);
}

/// A response whose question is `qname_wire` as given (any bytes).
pub fn raw_question(qname_wire: &[u8]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(qname_wire);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}
