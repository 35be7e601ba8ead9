//! DNS messages the RPZ server sends, built with hickory-proto: the zone's
//! SOA and NS, policy records, transfers split into TCP-sized messages, and
//! NOTIFY.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::config::Rpz;
use super::zone::Rr;

/// Bytes of records per transfer message (before name compression): well
/// under the 64 KiB a TCP DNS message may hold.
const MESSAGE_BYTES: usize = 16_000;

pub fn apex(cfg: &Rpz) -> Name {
    Name::from_ascii(format!("{}.", cfg.zone)).expect("checked zone name")
}

pub use super::zone::serial;

pub fn soa(cfg: &Rpz, version: u64) -> Record {
    let zone = apex(cfg);
    let mname = Name::from_ascii("localhost.").expect("literal");
    let rname = Name::from_ascii(format!("hostmaster.{}.", cfg.zone)).expect("checked zone name");
    // refresh 60 s, retry 10 s, expire 1 week, negative TTL = the policy TTL:
    // NOTIFY brings changes within a second; the refresh only covers a lost
    // NOTIFY, and a week of an unreachable centre keeps the last zone.
    let data = SOA::new(mname, rname, serial(version), 60, 10, 604_800, cfg.ttl);
    Record::from_rdata(zone, cfg.ttl, RData::SOA(data))
}

fn ns(cfg: &Rpz) -> Record {
    // A zone without NS is refused by BIND; the name is never resolved.
    Record::from_rdata(
        apex(cfg),
        cfg.ttl,
        RData::NS(NS(Name::from_ascii("localhost.").expect("literal"))),
    )
}

pub fn record(cfg: &Rpz, rr: &Rr) -> Option<Record> {
    let owner = Name::from_ascii(format!("{}.{}.", rr.owner, cfg.zone)).ok()?;
    let target = match &rr.target {
        None => Name::root(),
        Some(t) => Name::from_ascii(format!("{t}.")).ok()?,
    };
    Some(Record::from_rdata(
        owner,
        cfg.ttl,
        RData::CNAME(CNAME(target)),
    ))
}

fn response(id: u16, rcode: ResponseCode) -> Message {
    let mut m = Message::response(id, OpCode::Query);
    m.metadata.authoritative = rcode == ResponseCode::NoError;
    m.metadata.response_code = rcode;
    m
}

/// An error answer echoing the question.
pub fn error(id: u16, op: OpCode, query: Option<&Query>, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::error_msg(id, op, rcode);
    if let Some(q) = query {
        m.add_query(q.clone());
    }
    m.to_vec().unwrap_or_default()
}

/// One message answering `query` with `answers`.
pub fn single(id: u16, query: &Query, answers: Vec<Record>, truncated: bool) -> Vec<u8> {
    let mut m = response(id, ResponseCode::NoError);
    m.metadata.truncation = truncated;
    m.add_query(query.clone());
    m.add_answers(answers);
    m.to_vec().unwrap_or_default()
}

/// A transfer: `records` in as many messages as they need, the question in
/// the first only (RFC 5936 2.2).
pub fn transfer(id: u16, query: &Query, records: Vec<Record>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut m = response(id, ResponseCode::NoError);
    m.add_query(query.clone());
    let mut bytes = 0;
    for r in records {
        let size = r.name.len() + 16 + rdata_len(&r);
        if bytes + size > MESSAGE_BYTES && !m.answers.is_empty() {
            out.push(m.to_vec().unwrap_or_default());
            m = response(id, ResponseCode::NoError);
            bytes = 0;
        }
        bytes += size;
        m.add_answer(r);
    }
    out.push(m.to_vec().unwrap_or_default());
    out
}

fn rdata_len(r: &Record) -> usize {
    match &r.data {
        RData::CNAME(c) => c.0.len() + 2,
        RData::SOA(s) => s.mname.len() + s.rname.len() + 24,
        _ => 64,
    }
}

/// The whole zone: SOA, NS, policy records, SOA.
pub fn full_zone(cfg: &Rpz, version: u64, rrs: &[Rr]) -> Vec<Record> {
    let mut out = Vec::with_capacity(rrs.len() + 3);
    out.push(soa(cfg, version));
    out.push(ns(cfg));
    out.extend(rrs.iter().filter_map(|r| record(cfg, r)));
    out.push(soa(cfg, version));
    out
}

/// An incremental transfer as one condensed difference (RFC 1995 4):
/// new SOA, old SOA, deletions, new SOA, additions, new SOA.
pub fn incremental(cfg: &Rpz, from: u64, to: u64, deleted: &[Rr], added: &[Rr]) -> Vec<Record> {
    let mut out = Vec::with_capacity(deleted.len() + added.len() + 4);
    out.push(soa(cfg, to));
    out.push(soa(cfg, from));
    out.extend(deleted.iter().filter_map(|r| record(cfg, r)));
    out.push(soa(cfg, to));
    out.extend(added.iter().filter_map(|r| record(cfg, r)));
    out.push(soa(cfg, to));
    out
}

/// NOTIFY for the zone at `version` (RFC 1996), id chosen by the caller.
pub fn notify(cfg: &Rpz, id: u16, version: u64) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    let mut q = Query::query(apex(cfg), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.add_answer(soa(cfg, version));
    m.to_vec().unwrap_or_default()
}
