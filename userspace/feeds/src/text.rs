//! Text helpers shared by the parsers: lines, addresses, ports.

use std::net::IpAddr;

use c2wall_model::{Domain, PortScope, Prefix, Protocol, Target};

use crate::FeedError;

/// The input as text; feeds are ASCII in practice, anything not UTF-8 is not
/// a feed. A UTF-8 byte-order mark is dropped.
pub fn utf8(bytes: &[u8]) -> Result<&str, FeedError> {
    let s = std::str::from_utf8(bytes).map_err(|e| FeedError::NotText(e.valid_up_to()))?;
    Ok(s.strip_prefix('\u{feff}').unwrap_or(s))
}

/// Lines numbered from 1, with CR (CRLF files) and surrounding spaces removed.
/// A missing final newline is fine.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()))
}

/// `s` up to the first of the comment characters `marks`, trimmed.
pub fn uncomment<'a>(s: &'a str, marks: &[char]) -> &'a str {
    match s.find(|c| marks.contains(&c)) {
        Some(i) => s[..i].trim(),
        None => s.trim(),
    }
}

/// An address or prefix, strictly: a bare address is a host prefix; leading
/// zeros in IPv4 octets (octal or decimal?) and host bits set are errors.
pub fn prefix(s: &str) -> Result<Prefix, String> {
    let addr = s.split_once('/').map_or(s, |(a, _)| a);
    if addr.contains('.') && !addr.contains(':') {
        if let Some(o) = addr
            .split('.')
            .find(|o| o.len() > 1 && o.starts_with('0') && o.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "`{s}`: leading zero in IPv4 octet `{o}` (ambiguous: octal or decimal?)"
            ));
        }
    }
    s.parse::<Prefix>().map_err(|e| e.to_string())
}

/// A single address (no length).
pub fn address(s: &str) -> Result<IpAddr, String> {
    if s.contains('/') {
        return Err(format!("`{s}`: expected an address, not a prefix"));
    }
    Ok(prefix(s)?.addr())
}

/// A DNS name as a feed lists it: `evil.example` is that name, `*.evil.example`
/// the name and everything below it; normalised (case, final dot, IDNA).
pub fn domain(s: &str) -> Result<Domain, String> {
    s.trim().parse::<Domain>().map_err(|e| e.to_string())
}

/// The host of a URL IOC (`http://evil.example:8080/gate.php`): its name as
/// a domain entry, or its address as a host prefix.
pub fn url_host(url: &str) -> Result<Target, String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("`{url}` is not a URL (no scheme://)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h).unwrap_or(v6)
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(Target::Prefix(Prefix::host(a)));
    }
    Ok(Target::Domain(
        domain(host).map_err(|e| format!("`{url}`: {e}"))?,
    ))
}

/// An entry count a feed states about itself in a comment line:
/// `# Number of entries: 123`, `# Total entries: 123`, `# Entries: 123`,
/// `# END (123 entries)`.
pub fn stated_count(line: &str) -> Option<usize> {
    let body = line.trim_start_matches(['#', ';', ' ']).trim();
    let lower = body.to_ascii_lowercase();
    let digits = |s: &str| -> Option<usize> {
        let d: String = s
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        d.parse().ok()
    };
    if let Some(rest) = lower.strip_prefix("end") {
        return rest.contains("entries").then(|| digits(rest)).flatten();
    }
    for key in ["number of entries:", "total entries:", "entries:"] {
        if let Some(rest) = lower.strip_prefix(key) {
            return rest
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit())
                .then(|| digits(rest))
                .flatten();
        }
    }
    None
}

/// A C&C-side port: 1-65535, digits only.
pub fn port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("`{s}` is not a port number (1-65535)"))
}

pub fn scope(protocol: Protocol, port: u16) -> Option<PortScope> {
    Some(PortScope { protocol, port })
}

/// `ip:port`, `[v6]:port` (ThreatFox style IOCs).
pub fn addr_port(s: &str) -> Result<(Prefix, u16), String> {
    let (a, p) = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| format!("`{s}`: expected [IPv6]:port"))?
    } else {
        let (a, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: expected IP:port"))?;
        if a.contains(':') {
            return Err(format!("`{s}`: an IPv6 address with a port needs brackets"));
        }
        (a, p)
    };
    let a = address(a)?;
    Ok((Prefix::host(a), port(p)?))
}

/// Unix seconds of an RFC 3339 time (`2024-01-01T00:00:00Z`, fractions ok)
/// or of `YYYY-MM-DD HH:MM:SS` (UTC, as abuse.ch writes it).
pub fn timestamp(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let t = if t.len() == 19 && t.as_bytes()[10] == b' ' {
        format!("{}T{}Z", &t[..10], &t[11..])
    } else {
        t.to_string()
    };
    humantime::parse_rfc3339_weak(&t)
        .or_else(|_| humantime::parse_rfc3339(&t))
        .map_err(|e| format!("`{s}` is not a time: {e}"))
        .map(|st| {
            st.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_strict_and_messages_name_the_input() {
        assert_eq!(prefix("192.0.2.0").unwrap().to_string(), "192.0.2.0/32");
        assert_eq!(prefix("192.0.2.255").unwrap().to_string(), "192.0.2.255/32");
        assert_eq!(
            prefix("2001:DB8::1").unwrap().to_string(),
            "2001:db8::1/128",
            "any case"
        );
        assert_eq!(
            prefix("2001:0db8:0000:0000:0000:0000:0000:0000/32")
                .unwrap()
                .to_string(),
            "2001:db8::/32",
            "uncompressed"
        );
        let e = prefix("010.0.0.1").unwrap_err();
        assert!(e.contains("leading zero") && e.contains("010"), "{e}");
        let e = prefix("10.0.0.1/8").unwrap_err();
        assert!(e.contains("host bits") && e.contains("10.0.0.0/8"), "{e}");
        assert!(prefix("10.0.0.256").is_err());
        assert!(prefix("10.0.0/8").is_err());
        assert!(port("0").is_err() && port("65536").is_err() && port("+80").is_err());
        assert_eq!(port("443"), Ok(443));
        assert_eq!(
            addr_port("[2001:db8::1]:8080").map(|(p, n)| (p.to_string(), n)),
            Ok(("2001:db8::1/128".into(), 8080))
        );
        assert!(addr_port("2001:db8::1:8080").is_err());
        assert_eq!(timestamp("2024-01-17 07:44:46"), Ok(1705477486));
        assert_eq!(timestamp("2024-01-17T07:44:46.123Z"), Ok(1705477486));
    }
}
