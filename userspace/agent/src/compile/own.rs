//! What the compiler keeps per listed prefix between applies: the rules
//! of the entries listed at exactly that prefix, compactly.

use std::collections::BTreeMap;

use c2wall_common::Rule;
use c2wall_model::{PortScope, Protocol};

/// The rules of the entries listed at exactly one prefix. One identity
/// (prefix, port scope) owns one pair. Kept for every listed prefix
/// between applies, so it is small: the address pair in two words, port
/// rules (few prefixes have any) behind a pointer that is null without.
#[derive(Clone, Default, PartialEq)]
pub(super) struct Own {
    addr: [Slim; 2],
    ports: Option<Box<PortRules>>,
}

/// An entry's port-scoped rules by (protocol number, port).
type PortRules = BTreeMap<(u8, u16), [Option<Rule>; 2]>;

/// One direction's rule as the compiler holds it: entry id, action and a
/// present bit in one word; 0 is none. The counter slot is the kernel
/// layer's, so there is nothing else to keep.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Slim(u64);

const SLIM_PRESENT: u64 = 1 << 40;

impl Slim {
    fn of(r: Option<Rule>) -> Slim {
        r.map_or(Slim(0), |r| {
            Slim(r.entry_id as u64 | (r.action as u64) << 32 | SLIM_PRESENT)
        })
    }
    fn rule(self) -> Option<Rule> {
        (self.0 & SLIM_PRESENT != 0).then_some(Rule {
            entry_id: self.0 as u32,
            counter: 0,
            action: (self.0 >> 32) as u8,
            _pad: [0; 3],
        })
    }
}

impl Own {
    pub(super) fn is_empty(&self) -> bool {
        self.addr == [Slim(0); 2] && self.ports.is_none()
    }
    pub(super) fn addr(&self) -> [Option<Rule>; 2] {
        self.addr.map(Slim::rule)
    }
    pub(super) fn set_addr(&mut self, rules: [Option<Rule>; 2]) {
        self.addr = rules.map(Slim::of);
    }
    pub(super) fn port(&self, k: &(u8, u16)) -> Option<[Option<Rule>; 2]> {
        self.ports.as_ref()?.get(k).copied()
    }
    /// Sets the pair of port scope `k`; none on both sides removes it.
    pub(super) fn set_port(&mut self, k: (u8, u16), rules: [Option<Rule>; 2]) {
        if rules == [None, None] {
            if let Some(p) = self.ports.as_mut() {
                p.remove(&k);
                if p.is_empty() {
                    self.ports = None;
                }
            }
        } else {
            self.ports.get_or_insert_default().insert(k, rules);
        }
    }
    /// The ids of the entries listed here, address entry first, then port
    /// scopes in (protocol, port) order.
    pub(super) fn ids(&self) -> impl Iterator<Item = (Option<PortScope>, u32)> + '_ {
        let pair_id = |pair: [Option<Rule>; 2]| pair.iter().flatten().next().map(|r| r.entry_id);
        let addr = pair_id(self.addr()).map(|id| (None, id));
        let ports = self.ports().filter_map(move |(&(proto, port), pair)| {
            let protocol = Protocol::from_number(proto)?;
            Some((Some(PortScope { protocol, port }), pair_id(*pair)?))
        });
        addr.into_iter().chain(ports)
    }
    pub(super) fn ports(&self) -> impl Iterator<Item = (&(u8, u16), &[Option<Rule>; 2])> {
        self.ports.iter().flat_map(|p| p.iter())
    }
}
