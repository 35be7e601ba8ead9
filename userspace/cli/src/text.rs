//! Text for people: stored fields printed with non-printable characters
//! escaped, times that never panic.

/// Prints one human line with every character a terminal could take as a
/// command escaped: stored fields come from callers (colours, carriage
/// returns, right-to-left overrides must show as text, not act).
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        println!("{}", $crate::text::printable(&format!($($t)*)))
    };
}

/// `s` with control and bidirectional-formatting characters escaped.
pub fn printable(s: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| c.is_control() || bidi(c)) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() || bidi(c) {
                Box::new(c.escape_unicode())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

/// A time for people: RFC 3339, or the raw number when it is outside what
/// RFC 3339 can show (a server may send anything; the CLI never panics).
pub fn ts(t: i64) -> String {
    if t <= 0 {
        return "-".into();
    }
    if t > c2wall_model::limits::MAX_TIME {
        return format!("@{t}");
    }
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_cannot_drive_the_terminal() {
        let hostile = "feed\u{1b}[31mred\rover\u{202e}txt";
        let p = printable(hostile);
        assert!(!p.chars().any(|c| c.is_control()), "{p}");
        assert_eq!(p, "feed\\u{1b}[31mred\\u{d}over\\u{202e}txt");
        assert_eq!(printable("203.0.113.0/24 emotet"), "203.0.113.0/24 emotet");
    }

    #[test]
    fn any_time_a_server_sends_prints_without_panicking() {
        assert_eq!(ts(0), "-");
        assert_eq!(ts(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(ts(c2wall_model::limits::MAX_TIME), "9999-12-31T23:59:59Z");
        assert_eq!(ts(i64::MAX), format!("@{}", i64::MAX));
    }
}
