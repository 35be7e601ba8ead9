//! What the compiler keeps per listed prefix between applies: the rules
//! of the entries listed at exactly that prefix, compactly.

use c2wall_common::Rule;
use c2wall_model::{PortScope, Protocol};

/// The rules of the entries listed at exactly one prefix. One identity
/// (prefix, port scope) owns one entry, so one rule: the same in each
/// direction it covers. Kept for every listed prefix between applies (a
/// million of them), so 16 bytes: the address entry in one word, port
/// entries (few prefixes have any) behind a pointer that is null without.
#[derive(Clone, Default, PartialEq)]
pub(super) struct Own {
    addr: Slim,
    ports: Option<Box<PortRules>>,
}

/// Port scopes (protocol number, port) with their rules, sorted; never
/// empty. Boxed, so the pointer in [`Own`] is one word.
type PortRules = Vec<((u8, u16), Slim)>;

/// One entry's rule as the compiler holds it: entry id, action and the
/// directions it covers in one word; 0 is none. The counter slot is the
/// kernel layer's, so there is nothing else to keep.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Slim(u64);

const SLIM_TO_CC: u64 = 1 << 40;
const SLIM_FROM_CC: u64 = 1 << 41;

impl Slim {
    /// `rules` per direction [to_cc, from_cc], as `rule_of` makes them:
    /// one rule, in the directions the entry covers.
    fn of(rules: [Option<Rule>; 2]) -> Slim {
        debug_assert!(
            !matches!(rules, [Some(a), Some(b)] if a != b),
            "one entry, one rule"
        );
        let Some(r) = rules.iter().flatten().next() else {
            return Slim(0);
        };
        let dirs = rules[0].map_or(0, |_| SLIM_TO_CC) | rules[1].map_or(0, |_| SLIM_FROM_CC);
        Slim(r.entry_id as u64 | (r.action as u64) << 32 | dirs)
    }
    fn rules(self) -> [Option<Rule>; 2] {
        let rule = Rule {
            entry_id: self.0 as u32,
            counter: 0,
            action: (self.0 >> 32) as u8,
            _pad: [0; 3],
        };
        [SLIM_TO_CC, SLIM_FROM_CC].map(|dir| (self.0 & dir != 0).then_some(rule))
    }
    fn id(self) -> Option<u32> {
        (self.0 != 0).then_some(self.0 as u32)
    }
}

impl Own {
    pub(super) fn is_empty(&self) -> bool {
        self.addr == Slim(0) && self.ports.is_none()
    }
    pub(super) fn addr(&self) -> [Option<Rule>; 2] {
        self.addr.rules()
    }
    pub(super) fn set_addr(&mut self, rules: [Option<Rule>; 2]) {
        self.addr = Slim::of(rules);
    }
    pub(super) fn port(&self, k: &(u8, u16)) -> Option<[Option<Rule>; 2]> {
        let p = self.ports.as_ref()?;
        let i = p.binary_search_by_key(k, |(key, _)| *key).ok()?;
        Some(p[i].1.rules())
    }
    /// Sets the rules of port scope `k`; none on both sides removes it.
    pub(super) fn set_port(&mut self, k: (u8, u16), rules: [Option<Rule>; 2]) {
        let slim = Slim::of(rules);
        let p = self.ports.get_or_insert_default();
        match (p.binary_search_by_key(&k, |(key, _)| *key), slim) {
            (Ok(i), Slim(0)) => {
                p.remove(i);
            }
            (Ok(i), _) => p[i].1 = slim,
            (Err(_), Slim(0)) => {}
            (Err(i), _) => p.insert(i, (k, slim)),
        }
        if p.is_empty() {
            self.ports = None;
        }
    }
    /// The ids of the entries listed here, address entry first, then port
    /// scopes in (protocol, port) order.
    pub(super) fn ids(&self) -> impl Iterator<Item = (Option<PortScope>, u32)> + '_ {
        let addr = self.addr.id().map(|id| (None, id));
        let ports = self.port_slims().filter_map(|((proto, port), slim)| {
            let protocol = Protocol::from_number(proto)?;
            Some((Some(PortScope { protocol, port }), slim.id()?))
        });
        addr.into_iter().chain(ports)
    }
    /// Port scopes with their rules, in (protocol, port) order.
    pub(super) fn ports(&self) -> impl Iterator<Item = ((u8, u16), [Option<Rule>; 2])> + '_ {
        self.port_slims().map(|(k, slim)| (k, slim.rules()))
    }
    fn port_slims(&self) -> impl Iterator<Item = ((u8, u16), Slim)> + '_ {
        self.ports.iter().flat_map(|p| p.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_common::{ACTION_DROP, ACTION_MONITOR};

    fn rule(id: u32, action: u8) -> Rule {
        Rule {
            entry_id: id,
            action,
            ..Default::default()
        }
    }

    #[test]
    fn rules_come_back_as_set_in_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Own>(), 16);
        let mut o = Own::default();
        assert!(o.is_empty());
        let both = [Some(rule(7, ACTION_DROP)); 2];
        let from = [None, Some(rule(u32::MAX, ACTION_MONITOR))];
        o.set_addr(both);
        o.set_port((17, 53), from);
        o.set_port((6, 443), both);
        o.set_port((6, 80), [Some(rule(9, ACTION_MONITOR)), None]);
        assert_eq!(o.addr(), both);
        assert_eq!(o.port(&(17, 53)), Some(from));
        assert_eq!(o.port(&(6, 1)), None);
        let keys: Vec<_> = o.ports().map(|(k, _)| k).collect();
        assert_eq!(keys, [(6, 80), (6, 443), (17, 53)]);
        let ids: Vec<_> = o.ids().map(|(_, id)| id).collect();
        assert_eq!(ids, [7, 9, 7, u32::MAX]);
        for k in [(6, 80), (6, 443), (17, 53)] {
            o.set_port(k, [None, None]);
        }
        o.set_addr([None, None]);
        assert!(o.is_empty(), "the last rule gone leaves nothing");
    }
}
