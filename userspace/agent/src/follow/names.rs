//! The domain entries the edge follows: which names are listed (exactly or
//! with their subtree) and with what action, and the keys the program
//! probes for them (`c2wall_common::name_key`). The program's probe is a
//! hash, so every answer it hands over is checked here by name first.

use std::collections::{BTreeMap, HashMap};

use c2wall_common::{
    name_key, DNS_NAMES_CAPACITY, DNS_NAME_EXACT, DNS_NAME_SUBTREE, DNS_SUFFIX_LABELS,
};
use c2wall_model::{Action, Domain, DomainName, Entry, Identity};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    domains: BTreeMap<Domain, Action>,
}

impl Listed {
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Listed {
        let domains = entries
            .into_iter()
            .filter_map(|e| Some((e.target.domain()?.clone(), e.action)))
            .collect();
        Listed { domains }
    }

    /// Applies changed entries (new value, or None when withdrawn); prefix
    /// entries are ignored.
    pub fn apply(&mut self, changes: &[(Identity, Option<Entry>)]) {
        for (id, entry) in changes {
            let Some(d) = id.target.domain() else {
                continue;
            };
            match entry {
                Some(e) => self.domains.insert(d.clone(), e.action),
                None => self.domains.remove(d),
            };
        }
    }

    /// The entry that covers `name`: the name itself (exact or subtree),
    /// else the nearest parent listed with its subtree.
    pub fn covering(&self, name: &DomainName) -> Option<(&Domain, Action)> {
        let exact = Domain {
            name: name.clone(),
            subtree: false,
        };
        if let Some((d, a)) = self.domains.get_key_value(&exact) {
            return Some((d, *a));
        }
        let mut at = Some(name.clone());
        while let Some(n) = at {
            let sub = Domain {
                name: n.clone(),
                subtree: true,
            };
            if let Some((d, a)) = self.domains.get_key_value(&sub) {
                return Some((d, *a));
            }
            at = n.parent();
        }
        None
    }

    /// What the program's name map must hold: key -> DNS_NAME_* bits. A
    /// name deeper than the program keys is left out (only its resolvers
    /// enforce it), and so is every name past the map's capacity (in name
    /// order); the second value counts what was left out.
    pub fn keys(&self) -> (HashMap<u64, u32>, usize) {
        let mut keys = HashMap::new();
        let mut left_out = 0;
        for d in self.domains.keys() {
            if d.name.label_count() > DNS_SUFFIX_LABELS as usize
                || keys.len() >= DNS_NAMES_CAPACITY as usize
            {
                left_out += 1;
                continue;
            }
            let bit = if d.subtree {
                DNS_NAME_SUBTREE
            } else {
                DNS_NAME_EXACT
            };
            *keys.entry(name_key(d.name.as_str())).or_insert(0) |= bit;
        }
        (keys, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2wall_model::{Direction, Target};

    fn entry(d: &str, action: Action) -> Entry {
        Entry {
            target: Target::Domain(d.parse().expect("domain")),
            scope: None,
            action,
            direction: Direction::Both,
        }
    }

    #[test]
    fn covering_prefers_the_name_then_the_nearest_listed_parent() {
        let list = [
            entry("evil.example", Action::Drop),
            entry("*.bad.example", Action::Monitor),
            entry("*.x.bad.example", Action::Drop),
        ];
        let l = Listed::from_entries(&list);
        let name = |s: &str| s.parse::<DomainName>().expect("name");
        assert_eq!(
            l.covering(&name("evil.example"))
                .map(|(d, a)| (d.to_string(), a)),
            Some(("evil.example".into(), Action::Drop))
        );
        // An exact entry does not cover names below it.
        assert!(l.covering(&name("www.evil.example")).is_none());
        assert_eq!(
            l.covering(&name("a.x.bad.example")).map(|(_, a)| a),
            Some(Action::Drop)
        );
        assert_eq!(
            l.covering(&name("bad.example")).map(|(_, a)| a),
            Some(Action::Monitor)
        );
        assert!(l.covering(&name("good.example")).is_none());
    }

    #[test]
    fn keys_carry_both_bits_when_a_name_is_listed_both_ways() {
        let list = [
            entry("evil.example", Action::Drop),
            entry("*.evil.example", Action::Drop),
        ];
        let (keys, left_out) = Listed::from_entries(&list).keys();
        assert_eq!(left_out, 0);
        assert_eq!(
            keys.get(&name_key("evil.example")),
            Some(&(DNS_NAME_EXACT | DNS_NAME_SUBTREE))
        );
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn changes_add_and_withdraw_domains_only() {
        let mut l = Listed::default();
        let e = entry("evil.example", Action::Drop);
        let name = "evil.example".parse::<DomainName>().expect("name");
        l.apply(&[(e.identity(), Some(e.clone()))]);
        assert!(l.covering(&name).is_some());
        l.apply(&[(e.identity(), None)]);
        assert!(l.covering(&name).is_none());
        assert_eq!(l, Listed::default());
    }
}
