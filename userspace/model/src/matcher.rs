//! The reference matcher: the definition of which entry decides for a packet,
//! written as plainly as possible. The kernel program must agree with it on every
//! packet (the property tests check exactly that); it is also what "explain"
//! answers with.
//!
//! Rules:
//! - Each side is matched on its own: the destination against entries that apply
//!   `to` C&C (using the destination port), the source against entries that apply
//!   `from` C&C (using the source port).
//! - On one side, the candidates are entries whose prefix contains the address and
//!   whose port scope is absent or equals the packet's protocol and port (packets
//!   without ports, such as non-first fragments or ICMP, match address entries
//!   only). The longest prefix wins; at equal length a port-scoped entry beats an
//!   address entry.
//! - Between the two sides the stronger action wins (drop over monitor); on a tie
//!   the destination side is reported.

use std::net::IpAddr;

use crate::{Action, Entry, PortScope, Prefix, Protocol};

/// The parts of a packet the matcher looks at.
#[derive(Clone, Copy, Debug)]
pub struct PacketView {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `None` when the packet carries no usable ports.
    pub ports: Option<(Protocol, u16, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    ToCc,
    FromCc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match<'a> {
    pub side: Side,
    pub entry: &'a Entry,
}

/// The entry that decides one side, if any.
pub fn side_match<'a>(entries: &'a [Entry], pkt: &PacketView, side: Side) -> Option<&'a Entry> {
    let (addr, port) = match side {
        Side::ToCc => (pkt.dst, pkt.ports.map(|(p, _, d)| (p, d))),
        Side::FromCc => (pkt.src, pkt.ports.map(|(p, s, _)| (p, s))),
    };
    entries
        .iter()
        .filter(|e| match side {
            Side::ToCc => e.direction.includes_to(),
            Side::FromCc => e.direction.includes_from(),
        })
        .filter(|e| e.listed_prefix().is_some_and(|p| p.contains_addr(addr)))
        .filter(|e| match e.scope {
            None => true,
            Some(PortScope { protocol, port: p }) => port == Some((protocol, p)),
        })
        .max_by_key(|e| (e.listed_prefix().map(|p| p.len()), e.scope.is_some()))
}

/// The entry that decides the packet, if any.
pub fn decide<'a>(entries: &'a [Entry], pkt: &PacketView) -> Option<Match<'a>> {
    let to = side_match(entries, pkt, Side::ToCc);
    let from = side_match(entries, pkt, Side::FromCc);
    let strength = |e: Option<&Entry>| match e.map(|e| e.action) {
        None => 0,
        Some(Action::Monitor) => 1,
        Some(Action::Drop) => 2,
    };
    if strength(to) >= strength(from) {
        to.map(|entry| Match {
            side: Side::ToCc,
            entry,
        })
    } else {
        from.map(|entry| Match {
            side: Side::FromCc,
            entry,
        })
    }
}

/// Whether an address is covered by a protected (allowlist) prefix.
pub fn protected(allow: &[Prefix], addr: IpAddr) -> bool {
    allow.iter().any(|p| p.contains_addr(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    fn e(s: &str, scope: Option<(Protocol, u16)>, action: Action, direction: Direction) -> Entry {
        Entry {
            target: s.parse().unwrap(),
            scope: scope.map(|(protocol, port)| PortScope { protocol, port }),
            action,
            direction,
        }
    }

    fn pkt(src: &str, dst: &str, ports: Option<(Protocol, u16, u16)>) -> PacketView {
        PacketView {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ports,
        }
    }

    #[test]
    fn longest_prefix_wins_and_port_scope_falls_through() {
        let list = vec![
            e("203.0.113.0/24", None, Action::Drop, Direction::Both),
            e(
                "203.0.113.7/32",
                Some((Protocol::Tcp, 443)),
                Action::Monitor,
                Direction::Both,
            ),
        ];
        let tcp443 = pkt(
            "198.51.100.1",
            "203.0.113.7",
            Some((Protocol::Tcp, 5000, 443)),
        );
        assert_eq!(
            decide(&list, &tcp443).unwrap().entry.action,
            Action::Monitor
        );
        let tcp80 = pkt(
            "198.51.100.1",
            "203.0.113.7",
            Some((Protocol::Tcp, 5000, 80)),
        );
        assert_eq!(
            decide(&list, &tcp80)
                .unwrap()
                .entry
                .listed_prefix()
                .unwrap()
                .len(),
            24
        );
        let none = pkt("198.51.100.1", "203.0.114.7", None);
        assert!(decide(&list, &none).is_none());
    }

    #[test]
    fn direction_restricts_and_stronger_side_wins() {
        let list = vec![
            e("203.0.113.0/24", None, Action::Monitor, Direction::To),
            e("192.0.2.0/24", None, Action::Drop, Direction::From),
        ];
        // 203.0.113.9 as source: the entry only applies towards it.
        assert!(decide(&list, &pkt("203.0.113.9", "198.51.100.1", None)).is_none());
        let both = pkt("192.0.2.1", "203.0.113.9", None);
        let m = decide(&list, &both).unwrap();
        assert_eq!((m.side, m.entry.action), (Side::FromCc, Action::Drop));
    }
}
