//! Bounds on everything a caller can put into the coordinator, checked at the
//! API so that nothing stored can later break a reply, a frame or a printout:
//! every string field has a byte limit, every time a range. Refusals name the
//! field and the limit (INVALID_ARGUMENT).

use crate::error::WireError;

/// `source`: a feed name or `operator:NAME`.
pub const SOURCE_BYTES: usize = 128;
/// `category`: a malware family or a class.
pub const CATEGORY_BYTES: usize = 128;
/// `reference`: an SBL id, a URL, a ticket.
pub const REFERENCE_BYTES: usize = 2048;
/// `reason` of any change, `why` of a protected prefix.
pub const REASON_BYTES: usize = 4096;
/// An agent id, an actor name, a mode.
pub const NAME_BYTES: usize = 256;

/// The latest time accepted anywhere (9999-12-31T23:59:59Z): every time the
/// CLI prints stays a four-digit year.
pub const MAX_TIME: i64 = 253_402_300_799;

/// Longest time-to-live of an import (ten years).
pub const MAX_TTL_SECONDS: i64 = 10 * 366 * 24 * 3600;

/// Refuses `value` longer than `max` bytes.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), WireError> {
    if value.len() > max {
        return Err(WireError {
            field: field.to_string(),
            reason: format!("{} bytes, the limit is {max}", value.len()),
        });
    }
    Ok(())
}

/// Refuses a Unix time outside 0..=[`MAX_TIME`].
pub fn time(field: &str, t: i64) -> Result<(), WireError> {
    if !(0..=MAX_TIME).contains(&t) {
        return Err(WireError {
            field: field.to_string(),
            reason: format!("{t} is outside 0-{MAX_TIME} (year 9999)"),
        });
    }
    Ok(())
}

/// At most `max` characters of untrusted input, for an error message: a bad
/// value is quoted, never echoed whole (a megabyte of garbage would not fit
/// in a gRPC status header).
pub fn quote(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > max {
        out.push_str(&format!("... ({} bytes)", value.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field_and_bound() {
        assert!(text("reason", &"x".repeat(REASON_BYTES), REASON_BYTES).is_ok());
        let e = text("reason", &"x".repeat(REASON_BYTES + 1), REASON_BYTES).unwrap_err();
        assert_eq!(e.field, "reason");
        assert!(e.reason.contains("4097 bytes, the limit is 4096"), "{e}");
        assert!(time("valid_until", MAX_TIME).is_ok());
        assert!(time("valid_until", MAX_TIME + 1).is_err());
        assert!(time("valid_until", -1).is_err());
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        let q = quote(&format!("\u{1b}[31m{}", "a".repeat(1 << 20)), 40);
        assert!(q.len() < 80, "{q}");
        assert!(q.starts_with("\\u{1b}[31m"), "{q}");
        assert!(q.ends_with("(1048581 bytes)"), "{q}");
        assert_eq!(quote("ok", 40), "ok");
    }
}
