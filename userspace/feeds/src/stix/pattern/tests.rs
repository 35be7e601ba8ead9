use super::*;

fn addrs(p: &str) -> Vec<(String, Vec<u16>, usize)> {
    parse(p)
        .unwrap()
        .into_iter()
        .filter(|a| !a.addrs.is_empty())
        .map(|a| {
            (
                a.addrs
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                a.ports,
                a.protocols.len(),
            )
        })
        .collect()
}

#[test]
fn the_address_subset_of_the_grammar() {
    assert_eq!(
        addrs("[ipv4-addr:value = '192.0.2.1']"),
        [("192.0.2.1/32".into(), vec![], 0)]
    );
    assert_eq!(
        addrs("[ipv4-addr:value ISSUBSET '198.51.100.0/24'] OR [ipv6-addr:value = '2001:DB8::1']"),
        [
            ("198.51.100.0/24".into(), vec![], 0),
            ("2001:db8::1/128".into(), vec![], 0)
        ]
    );
    assert_eq!(
        addrs("[network-traffic:dst_ref.value = '192.0.2.5' AND network-traffic:dst_port = 443 AND network-traffic:protocols[*] = 'tcp']"),
        [("192.0.2.5/32".into(), vec![443], 1)]
    );
    assert_eq!(
        addrs("([ipv4-addr:value = '192.0.2.6'] FOLLOWEDBY [ipv4-addr:value = '192.0.2.7']) WITHIN 600 SECONDS"),
        [("192.0.2.6/32".into(), vec![], 0), ("192.0.2.7/32".into(), vec![], 0)]
    );
    assert_eq!(
        addrs("[(ipv4-addr:value = '192.0.2.8' OR ipv4-addr:value = '192.0.2.9') AND network-traffic:dst_port IN (80, 8080)]"),
        [
            ("192.0.2.8/32".into(), vec![80], 0),
            ("192.0.2.8/32".into(), vec![8080], 0),
            ("192.0.2.9/32".into(), vec![80], 0),
            ("192.0.2.9/32".into(), vec![8080], 0)
        ]
    );
    // Nothing to block: negation, source addresses, other objects.
    assert!(addrs("[ipv4-addr:value != '192.0.2.1']").is_empty());
    assert!(addrs("[ipv4-addr:value NOT = '192.0.2.1']").is_empty());
    assert!(addrs("[network-traffic:src_ref.value = '192.0.2.1']").is_empty());
    let hashes = "[file:hashes.'SHA-256' = 'aa'] AND [x-custom:value = 'x'] REPEATS 2 TIMES";
    assert_eq!(parse(hashes).map(|a| a.len()), Ok(2));
    assert!(addrs(hashes).is_empty());
}

#[test]
fn names_from_domain_name_url_and_dst_ref() {
    assert_eq!(
        addrs("[domain-name:value = 'Evil.Example'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'"),
        [("evil.example".into(), vec![], 0)]
    );
    assert_eq!(
        addrs("[url:value = 'http://gate.example:8080/x'] OR [url:value = 'https://192.0.2.40/']"),
        [
            ("gate.example".into(), vec![], 0),
            ("192.0.2.40/32".into(), vec![], 0)
        ]
    );
    assert_eq!(
        addrs("[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'c2.example']"),
        [("c2.example".into(), vec![], 0)]
    );
    assert!(parse("[domain-name:value = 'bad..example']").is_err());
}

#[test]
fn every_form_pairing_an_address_with_a_port() {
    // An address object ANDed with a network-traffic port in one
    // observation, in either order, with or without dst_ref.type.
    for p in [
        "[ipv4-addr:value = '192.0.2.50' AND network-traffic:dst_port = 443]",
        "[network-traffic:dst_port = 443 AND ipv4-addr:value = '192.0.2.50']",
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '192.0.2.50' AND network-traffic:dst_port = 443]",
        "[(network-traffic:dst_ref.value = '192.0.2.50') AND (network-traffic:dst_port = 443)]",
    ] {
        assert_eq!(addrs(p), [("192.0.2.50/32".into(), vec![443], 0)], "{p}");
    }
    assert_eq!(
        addrs("[ipv6-addr:value = '2001:db8::50' AND network-traffic:dst_port = 8443 AND network-traffic:protocols[*] = 'udp']"),
        [("2001:db8::50/128".into(), vec![8443], 1)]
    );
}

#[test]
fn malformed_patterns_are_errors() {
    for bad in [
        "ipv4-addr:value = '192.0.2.1'",
        "[ipv4-addr:value = '192.0.2.1'",
        "[ipv4-addr:value '192.0.2.1']",
        "[ipv4-addr:value = '192.0.2.1'] AND",
        "[ipv4-addr:value = '192.0.2.300']",
        "[ipv4-addr:value = 'unterminated]",
        "[network-traffic:dst_port = 70000]",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}
