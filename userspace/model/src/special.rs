//! Address ranges no C&C entry may touch: blocking them breaks the network
//! itself. The coordinator refuses entries overlapping them; the edge never
//! follows a DNS answer into them.

use std::net::IpAddr;

use crate::Prefix;

/// Ranges no entry may touch, with why.
pub const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "IPv4 link-local"),
    ("224.0.0.0/4", "IPv4 multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("::/128", "the unspecified address"),
    ("::1/128", "IPv6 loopback"),
    ("::ffff:0:0/96", "IPv4-mapped addresses"),
    ("fe80::/10", "IPv6 link-local"),
    ("ff00::/8", "IPv6 multicast"),
];

/// Private and shared address space (RFC 1918, RFC 6598, RFC 4193). An
/// operator may list such a prefix on purpose; an answer from the internet
/// naming one (DNS rebinding, or a sinkholed name) must not make the edge
/// block the ISP's own or its subscribers' networks.
pub const PRIVATE: &[(&str, &str)] = &[
    ("10.0.0.0/8", "private-use (RFC 1918)"),
    ("172.16.0.0/12", "private-use (RFC 1918)"),
    ("192.168.0.0/16", "private-use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("fc00::/7", "unique local (RFC 4193)"),
];

/// Why `addr` lies in a special-purpose or private range, if it does.
pub fn special_purpose(addr: IpAddr) -> Option<&'static str> {
    SPECIAL
        .iter()
        .chain(PRIVATE)
        .find(|(p, _)| p.parse::<Prefix>().is_ok_and(|p| p.contains_addr(addr)))
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_private_addresses_say_why() {
        let why = |a: &str| special_purpose(a.parse().expect("addr"));
        assert_eq!(why("127.0.0.53"), Some("loopback"));
        assert_eq!(why("10.1.2.3"), Some("private-use (RFC 1918)"));
        assert_eq!(why("fd00::1"), Some("unique local (RFC 4193)"));
        assert_eq!(why("198.51.100.7"), None);
        assert_eq!(why("2001:db8::1"), None);
    }
}
