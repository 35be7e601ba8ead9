use super::*;

fn name(s: &str) -> DomainName {
    s.parse().expect("name")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn limits() -> Limits {
    Limits {
        enabled: true,
        ttl_floor: 10,
        ttl_ceiling: 100,
        per_name: 2,
        total: 3,
        resolvers: Vec::new(),
    }
}

#[test]
fn only_configured_resolvers_are_followed_when_set() {
    let any = Followed::new(limits());
    assert!(any.accepts(ip("192.0.2.53")));
    let mut l = limits();
    l.resolvers = vec!["192.0.2.0/28".parse().expect("prefix")];
    let some = Followed::new(l);
    assert!(some.accepts(ip("192.0.2.5")));
    assert!(!some.accepts(ip("192.0.2.53")));
    assert!(!some.accepts(ip("2001:db8::53")));
}

#[test]
fn the_follow_table_parses_and_names_a_bad_resolver() {
    let l: Limits =
        toml::from_str("resolvers = [\"192.0.2.53\", \"2001:db8::/64\"]\nttl_floor = 5")
            .expect("parses");
    assert_eq!(l.resolvers.len(), 2);
    assert_eq!(l.ttl_floor, 5);
    assert_eq!(l.ttl_ceiling, Limits::default().ttl_ceiling);
    let e = toml::from_str::<Limits>("resolvers = [\"resolver.example\"]").unwrap_err();
    assert!(e.to_string().contains("`resolver.example`"), "{e}");
}

#[test]
fn answers_add_host_entries_that_expire_with_their_clamped_ttl() {
    let mut t = Followed::new(limits());
    let t0 = Instant::now();
    let n = name("evil.example");
    let a = t.add(
        &n,
        Action::Drop,
        &[(ip("198.51.100.1"), 0), (ip("2001:db8::1"), 1000)],
        t0,
        |_| false,
    );
    assert_eq!(a.added, 2);
    let ids: Vec<String> = a.changes.iter().map(|(i, _)| i.to_string()).collect();
    assert_eq!(ids, ["198.51.100.1/32", "2001:db8::1/128"]);
    assert_eq!(t.source_of(&a.changes[0].0), Some(&n));
    // TTL 0 is held for the floor (10 s), 1000 for the ceiling (100 s).
    assert!(t.expire(t0 + Duration::from_secs(9)).is_empty());
    let gone = t.expire(t0 + Duration::from_secs(10));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0.to_string(), "198.51.100.1/32");
    assert!(gone[0].1.is_none());
    assert_eq!(t.expire(t0 + Duration::from_secs(100)).len(), 1);
    assert_eq!(t.counts(), (0, 0));
}

#[test]
fn special_private_and_allowlisted_addresses_are_never_added() {
    let mut t = Followed::new(limits());
    let a = t.add(
        &name("evil.example"),
        Action::Drop,
        &[
            (ip("127.0.0.1"), 60),
            (ip("10.0.0.1"), 60),
            (ip("ff02::1"), 60),
            (ip("8.8.8.8"), 60),
        ],
        Instant::now(),
        |a| a == ip("8.8.8.8"),
    );
    assert_eq!(a.added, 0);
    assert!(a.changes.is_empty());
    let why: Vec<&str> = a.refused.iter().map(|(_, r)| r.reason()).collect();
    assert_eq!(why, ["special", "special", "special", "allowlisted"]);
}

#[test]
fn bounds_per_name_and_in_total_hold() {
    let mut t = Followed::new(limits());
    let now = Instant::now();
    let a = t.add(
        &name("a.example"),
        Action::Drop,
        &[
            (ip("198.51.100.1"), 60),
            (ip("198.51.100.2"), 60),
            (ip("198.51.100.3"), 60),
        ],
        now,
        |_| false,
    );
    assert_eq!((a.added, a.refused.len()), (2, 1));
    assert_eq!(a.refused[0].1, Refused::NameFull);
    let b = t.add(
        &name("b.example"),
        Action::Drop,
        &[(ip("203.0.113.1"), 60), (ip("203.0.113.2"), 60)],
        now,
        |_| false,
    );
    assert_eq!((b.added, b.refused[0].1), (1, Refused::TotalFull));
    assert_eq!(t.counts(), (3, 2));
}

#[test]
fn a_repeated_address_is_refreshed_and_keeps_its_first_name() {
    let mut t = Followed::new(limits());
    let t0 = Instant::now();
    t.add(
        &name("a.example"),
        Action::Monitor,
        &[(ip("198.51.100.1"), 20)],
        t0,
        |_| false,
    );
    let again = t.add(
        &name("b.example"),
        Action::Drop,
        &[(ip("198.51.100.1"), 50)],
        t0,
        |_| false,
    );
    assert_eq!((again.added, again.refreshed), (0, 1));
    // Stronger action: the entry changes to drop.
    assert_eq!(again.changes.len(), 1);
    assert_eq!(
        again.changes[0].1.as_ref().map(|e| e.action),
        Some(Action::Drop)
    );
    assert!(t.expire(t0 + Duration::from_secs(30)).is_empty());
    assert_eq!(t.expire(t0 + Duration::from_secs(50)).len(), 1);
}

#[test]
fn a_withdrawn_name_drops_its_addresses() {
    let mut t = Followed::new(limits());
    let n = name("a.example");
    t.add(
        &n,
        Action::Drop,
        &[(ip("198.51.100.1"), 60)],
        Instant::now(),
        |_| false,
    );
    let gone = t.forget_name(&n);
    assert_eq!(gone.len(), 1);
    assert_eq!(t.counts(), (0, 0));
    assert!(t.entries().next().is_none());
}
