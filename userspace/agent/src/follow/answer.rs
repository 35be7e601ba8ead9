//! What one DNS response says about its question: the addresses it resolves
//! to, following the CNAME chain from the question name, each with the
//! shortest TTL on its way (a record may not outlive the alias that led to
//! it). Parsed with hickory-proto; anything malformed, truncated or not a
//! successful answer is `None`, never a panic. Records in the answer section
//! that the chain does not reach are ignored: a response cannot make the
//! agent block an address for a name nobody asked about.

use std::net::IpAddr;

use c2wall_model::DomainName;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData};

/// CNAME hops followed from the question (resolvers stop far earlier).
pub const MAX_HOPS: usize = 8;
/// Addresses taken from one response.
pub const MAX_ADDRS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The question, normalised as entries are.
    pub name: DomainName,
    /// Each address with the TTL its chain allows (seconds).
    pub addrs: Vec<(IpAddr, u32)>,
}

fn norm(n: &hickory_proto::rr::Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

pub fn parse(bytes: &[u8]) -> Option<Answer> {
    let m = Message::from_vec(bytes).ok()?;
    if m.message_type != MessageType::Response
        || m.op_code != OpCode::Query
        || m.response_code != ResponseCode::NoError
        || m.queries.len() != 1
        || m.truncation
    {
        return None;
    }
    let q = &m.queries[0];
    if q.query_class() != DNSClass::IN {
        return None;
    }
    let name: DomainName = norm(q.name()).parse().ok()?;
    // The chain: (owner, the shortest TTL of the CNAMEs that led to it).
    let mut chain: Vec<(String, u32)> = vec![(name.to_string(), u32::MAX)];
    for _ in 0..MAX_HOPS {
        let (last, ttl) = chain.last().cloned()?;
        let next = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if norm(&r.name) == last => Some((norm(&c.0), ttl.min(r.ttl))),
            _ => None,
        });
        match next {
            // A loop ends the chain where it closes.
            Some((target, t)) if !chain.iter().any(|(n, _)| *n == target) => {
                chain.push((target, t))
            }
            _ => break,
        }
    }
    let mut addrs: Vec<(IpAddr, u32)> = Vec::new();
    for r in &m.answers {
        let addr: IpAddr = match &r.data {
            RData::A(a) => a.0.into(),
            RData::AAAA(a) => a.0.into(),
            _ => continue,
        };
        let owner = norm(&r.name);
        let Some((_, via)) = chain.iter().find(|(n, _)| *n == owner) else {
            continue;
        };
        if addrs.len() < MAX_ADDRS && !addrs.iter().any(|(a, _)| *a == addr) {
            addrs.push((addr, r.ttl.min(*via)));
        }
    }
    Some(Answer { name, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::{Name, Record, RecordType};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn response(q: &str, answers: Vec<Record>) -> Vec<u8> {
        let mut m = Message::response(7, OpCode::Query);
        m.add_query(Query::query(n(q), RecordType::A));
        m.add_answers(answers);
        m.to_vec().unwrap()
    }

    fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            n(owner),
            ttl,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(n(owner), ttl, RData::CNAME(CNAME(n(target))))
    }

    fn aaaa(owner: &str, ttl: u32, ip: &str) -> Record {
        Record::from_rdata(
            n(owner),
            ttl,
            RData::AAAA(AAAA::from(ip.parse::<std::net::Ipv6Addr>().unwrap())),
        )
    }

    #[test]
    fn addresses_follow_the_cname_chain_with_the_shortest_ttl_bounded() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (question, answer records, addresses expected)
        type Case<'a> = (&'a str, Vec<Record>, Vec<(IpAddr, u32)>);
        let cases: Vec<Case> = vec![
            // A chain of two aliases; a record off the chain is never taken.
            (
                "WWW.Evil.example.",
                vec![
                    cname("www.evil.example.", 300, "cdn.evil.example."),
                    cname("cdn.evil.example.", 60, "edge.host.example."),
                    a("edge.host.example.", 600, [192, 0, 2, 7]),
                    aaaa("edge.host.example.", 30, "2001:db8::7"),
                    a("unrelated.example.", 600, [198, 51, 100, 1]),
                ],
                vec![(ip("192.0.2.7"), 60), (ip("2001:db8::7"), 30)],
            ),
            // An alias loop ends where it closes; a repeated record counts once.
            (
                "a.example.",
                vec![
                    cname("a.example.", 100, "b.example."),
                    cname("b.example.", 100, "a.example."),
                    a("b.example.", 100, [192, 0, 2, 1]),
                    a("b.example.", 100, [192, 0, 2, 1]),
                ],
                vec![(ip("192.0.2.1"), 100)],
            ),
        ];
        for (q, records, want) in cases {
            let ans = parse(&response(q, records)).unwrap();
            assert_eq!(ans.addrs, want, "{q}");
            assert_eq!(
                ans.name.as_str(),
                q.trim_end_matches('.').to_ascii_lowercase()
            );
        }
        let many: Vec<Record> = (0..100u8)
            .map(|i| a("m.example.", 5, [10, 0, 0, i]))
            .collect();
        assert_eq!(
            parse(&response("m.example.", many)).unwrap().addrs.len(),
            MAX_ADDRS
        );
    }

    #[test]
    fn not_an_answer_or_malformed_is_none() {
        // A query, an NXDOMAIN, a truncated message.
        let mut q = Message::query();
        q.add_query(Query::query(n("evil.example."), RecordType::A));
        assert_eq!(parse(&q.to_vec().unwrap()), None);
        let mut nx = Message::error_msg(1, OpCode::Query, ResponseCode::NXDomain);
        nx.add_query(Query::query(n("evil.example."), RecordType::A));
        assert_eq!(parse(&nx.to_vec().unwrap()), None);
        let good = response(
            "evil.example.",
            vec![a("evil.example.", 60, [192, 0, 2, 9])],
        );
        for cut in 0..good.len() {
            // Every prefix of a good answer: no panic, never an address that
            // the cut could have invented.
            if let Some(ans) = parse(&good[..cut]) {
                assert!(ans
                    .addrs
                    .iter()
                    .all(|(ip, _)| *ip == "192.0.2.9".parse::<IpAddr>().unwrap()));
            }
        }
        // A compression pointer to itself, and a label running past the end.
        let mut hdr = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        let mut looped = hdr.clone();
        looped.extend([0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&looped), None);
        hdr.extend([63, b'a', b'b']);
        assert_eq!(parse(&hdr), None);
    }

    #[test]
    fn a_name_of_the_longest_length_parses() {
        // 253 characters (255 bytes on the wire): four 62-byte labels and
        // a one-byte label.
        let label = "a".repeat(62);
        let long = format!("{label}.{label}.{label}.{label}.a.");
        assert_eq!(long.len(), 254, "with the final dot");
        let ans = parse(&response(&long, vec![a(&long, 60, [192, 0, 2, 2])])).unwrap();
        assert_eq!(ans.addrs.len(), 1);
    }
}
