//! The effective domain entries (and, for `rpz-ip` triggers, the whole-prefix
//! entries towards a C&C), for the RPZ zone.

use std::ops::Bound;

use c2wall_model::{Action, Domain, Identity, PortScope, Prefix, Protocol, Target};

use super::State;

impl State {
    /// The effective domain entries: name, action and supplying source.
    /// Domain identities sort after every prefix identity, so this is a
    /// range, not a scan of the prefixes.
    pub fn effective_domains(&self) -> Vec<(Domain, Action, String)> {
        let last_prefix = Identity {
            target: Target::Prefix(Prefix::host(std::net::Ipv6Addr::from(u128::MAX).into())),
            scope: Some(PortScope {
                protocol: Protocol::Udp,
                port: u16::MAX,
            }),
        };
        self.effective
            .range((Bound::Excluded(last_prefix), Bound::Unbounded))
            .filter_map(|(i, e)| {
                let d = i.target.domain()?.clone();
                Some((d, e.action, e.source.to_string()))
            })
            .collect()
    }

    /// Effective prefix entries an `rpz-ip` trigger can express: no port,
    /// towards the C&C (`to` or `both`).
    pub fn effective_ip_triggers(&self) -> Vec<(Prefix, Action, String)> {
        self.effective
            .iter()
            .take_while(|(i, _)| i.target.prefix().is_some())
            .filter(|(i, e)| i.scope.is_none() && e.direction.includes_to())
            .filter_map(|(i, e)| Some((i.target.prefix()?, e.action, e.source.to_string())))
            .collect()
    }
}
