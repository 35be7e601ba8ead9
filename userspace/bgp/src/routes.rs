//! From the verified list to what each peer is told: the mapping (RTBH
//! routes, Flowspec rules), the floors, the protected list and the route
//! ceiling. Pure: no BIRD, no I/O.
//!
//! - Monitor entries are never announced.
//! - A whole-prefix entry towards the C&C (`to` or `both`) is an RTBH route
//!   (destination), if the peer takes RTBH and the prefix is at or past
//!   the peer's floor; otherwise, with Flowspec, a destination rule.
//! - An entry with a protocol and port, or `from` only, is a Flowspec rule:
//!   destination prefix (and destination port) for `to`, source prefix
//!   (and source port) for `from`, both rules for `both`.
//! - An entry overlapping a protected prefix is never announced.
//! - Over the peer's `max_routes`, the most specific entries are kept (the
//!   longest prefix first, then the lowest address): an over-blocking
//!   short prefix goes first, a precise host route last.

use c2wall_model::{Action, Direction, Entry, Family, Identity, Prefix};

use crate::config::Peer;

/// A Flowspec rule (RFC 8955/8956): discard traffic matching it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    /// The entry's prefix, as destination (`true`) or source.
    pub prefix: Prefix,
    pub destination: bool,
    /// IP protocol number and port (destination port with a destination
    /// prefix, source port with a source prefix).
    pub scope: Option<(u8, u16)>,
}

/// Why an entry is not announced to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refused {
    Monitor,
    Protected,
    /// Shorter than the peer's RTBH floor, and no Flowspec to carry it.
    Floor,
    /// Needs Flowspec (a port or a single direction), the peer takes none.
    NoFlowspec,
    /// Over the peer's `max_routes`.
    Ceiling,
}

impl Refused {
    pub const ALL: [Refused; 5] = [
        Refused::Monitor,
        Refused::Protected,
        Refused::Floor,
        Refused::NoFlowspec,
        Refused::Ceiling,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Monitor => "monitor",
            Refused::Protected => "protected",
            Refused::Floor => "floor",
            Refused::NoFlowspec => "no_flowspec",
            Refused::Ceiling => "ceiling",
        }
    }
}

/// What one peer is told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerPlan {
    pub rtbh: Vec<Prefix>,
    pub flows: Vec<Flow>,
    pub refused: Vec<(Identity, Refused)>,
}

impl PeerPlan {
    pub fn routes(&self) -> usize {
        self.rtbh.len() + self.flows.len()
    }
}

fn flows(e: &Entry, prefix: Prefix) -> Vec<Flow> {
    let scope = e.scope.map(|s| (s.protocol.number(), s.port));
    let mut out = Vec::new();
    if e.direction.includes_to() {
        out.push(Flow {
            prefix,
            destination: true,
            scope,
        });
    }
    if e.direction.includes_from() {
        out.push(Flow {
            prefix,
            destination: false,
            scope,
        });
    }
    out
}

/// Maps `entries` for `peer`; `protected` prefixes are never announced.
pub fn plan<'a>(
    peer: &Peer,
    protected: &[Prefix],
    entries: impl IntoIterator<Item = &'a Entry>,
) -> PeerPlan {
    // Candidates with the entry they come from, for the ceiling.
    let mut rtbh: Vec<(Identity, Prefix)> = Vec::new();
    let mut fl: Vec<(Identity, Flow)> = Vec::new();
    let mut out = PeerPlan::default();
    for e in entries {
        // A domain entry is the resolvers' (RPZ), never a route.
        let Some(prefix) = e.listed_prefix() else {
            continue;
        };
        let id = e.identity();
        if e.action != Action::Drop {
            out.refused.push((id, Refused::Monitor));
            continue;
        }
        if protected
            .iter()
            .any(|p| p.contains(&prefix) || prefix.contains(p))
        {
            out.refused.push((id, Refused::Protected));
            continue;
        }
        let whole = e.scope.is_none() && e.direction != Direction::From;
        let floor_ok = prefix.len() >= peer.floor(prefix.family());
        if whole && peer.rtbh && floor_ok {
            rtbh.push((id, prefix));
        } else if peer.flowspec {
            // A whole prefix below the RTBH floor still goes as a precise
            // destination rule; Flowspec has no floor of its own.
            let rules = if whole {
                vec![Flow {
                    prefix,
                    destination: true,
                    scope: None,
                }]
            } else {
                flows(e, prefix)
            };
            fl.extend(rules.into_iter().map(|f| (id.clone(), f)));
        } else if whole {
            out.refused.push((id, Refused::Floor));
        } else {
            out.refused.push((id, Refused::NoFlowspec));
        }
    }
    if rtbh.len() + fl.len() > peer.max_routes {
        // Most specific first, then the lowest address; the rest is left out.
        let key = |p: &Prefix| {
            (
                std::cmp::Reverse(p.len()),
                p.family() == Family::V6,
                p.bits(),
            )
        };
        let mut all: Vec<(Identity, Option<Prefix>, Option<Flow>)> = rtbh
            .drain(..)
            .map(|(i, p)| (i, Some(p), None))
            .chain(fl.drain(..).map(|(i, f)| (i, None, Some(f))))
            .collect();
        all.sort_by_key(|(i, _, _)| i.prefix().as_ref().map(key));
        for (n, (i, p, f)) in all.into_iter().enumerate() {
            if n >= peer.max_routes {
                out.refused.push((i, Refused::Ceiling));
            } else if let Some(p) = p {
                rtbh.push((i, p));
            } else if let Some(f) = f {
                fl.push((i, f));
            }
        }
    }
    out.rtbh = rtbh.into_iter().map(|(_, p)| p).collect();
    out.flows = fl.into_iter().map(|(_, f)| f).collect();
    out.rtbh.sort();
    out.flows.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{PortScope, Protocol};

    fn peer(max: usize, flowspec: bool) -> Peer {
        Peer {
            name: "rr1".into(),
            address: "192.0.2.2".parse().unwrap(),
            asn: 64512,
            rtbh: true,
            flowspec,
            max_routes: max,
            password: None,
            community: None,
            min_prefix_v4: 24,
            min_prefix_v6: 48,
            source_address: None,
        }
    }

    fn e(p: &str, action: Action, direction: Direction, port: Option<u16>) -> Entry {
        Entry {
            target: p.parse().unwrap(),
            scope: port.map(|port| PortScope {
                protocol: Protocol::Tcp,
                port,
            }),
            action,
            direction,
        }
    }

    #[test]
    fn drop_entries_map_to_rtbh_or_flowspec_and_monitor_never_goes() {
        let list = [
            e("203.0.113.66", Action::Drop, Direction::Both, None),
            e("203.0.113.67", Action::Monitor, Direction::Both, None),
            e("203.0.113.68", Action::Drop, Direction::To, Some(443)),
            e("203.0.113.69", Action::Drop, Direction::From, None),
            e("2001:db8::/32", Action::Drop, Direction::To, None),
        ];
        let p = plan(&peer(100, true), &[], &list);
        assert_eq!(p.rtbh, vec!["203.0.113.66/32".parse().unwrap()]);
        assert_eq!(p.flows.len(), 3, "{:?}", p.flows);
        assert!(p.flows.contains(&Flow {
            prefix: "203.0.113.68/32".parse().unwrap(),
            destination: true,
            scope: Some((6, 443)),
        }));
        assert!(p.flows.contains(&Flow {
            prefix: "203.0.113.69/32".parse().unwrap(),
            destination: false,
            scope: None,
        }));
        // The /32 IPv6 prefix is below the /48 RTBH floor: a precise rule.
        assert!(p
            .flows
            .iter()
            .any(|f| f.prefix.len() == 32 && f.destination));
        assert_eq!(p.refused.len(), 1);
        assert_eq!(p.refused[0].1, Refused::Monitor);
        // Without Flowspec those are refused, naming why.
        let p = plan(&peer(100, false), &[], &list);
        let why: Vec<Refused> = p.refused.iter().map(|r| r.1).collect();
        assert!(why.contains(&Refused::NoFlowspec) && why.contains(&Refused::Floor));
    }

    #[test]
    fn protected_ranges_are_never_announced() {
        let list = [e("8.8.8.8", Action::Drop, Direction::Both, None)];
        let p = plan(&peer(100, true), &["8.8.8.0/24".parse().unwrap()], &list);
        assert!(p.rtbh.is_empty() && p.flows.is_empty());
        assert_eq!(p.refused[0].1, Refused::Protected);
    }

    #[test]
    fn the_ceiling_keeps_the_most_specific_entries() {
        let list = [
            e("198.51.100.0/24", Action::Drop, Direction::Both, None),
            e("203.0.113.9", Action::Drop, Direction::Both, None),
            e("203.0.113.8", Action::Drop, Direction::Both, None),
        ];
        let p = plan(&peer(2, true), &[], &list);
        assert_eq!(p.routes(), 2);
        assert_eq!(
            p.rtbh,
            vec![
                "203.0.113.8/32".parse().unwrap(),
                "203.0.113.9/32".parse().unwrap()
            ]
        );
        assert_eq!(
            p.refused,
            vec![(list[0].identity(), Refused::Ceiling)],
            "the /24 is left out"
        );
    }
}
