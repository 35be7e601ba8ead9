//! Just enough CSV for abuse.ch exports: comma separated, fields optionally
//! in double quotes (a doubled quote inside is one quote), spaces around
//! fields ignored (ThreatFox separates with `", "`).

/// The fields of one line, or why it is not a CSV record.
pub fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => return Err(format!("`{c}` after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field.trim().to_string());
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            out.push(field.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn quoted_bare_and_threatfox_separators() {
        assert_eq!(fields("a,b , c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            fields(r#""2024-01-01 00:00:00", "1", "x, y", "say ""hi""""#).unwrap(),
            ["2024-01-01 00:00:00", "1", "x, y", r#"say "hi""#]
        );
        assert_eq!(fields("a,,").unwrap(), ["a", "", ""]);
        assert!(fields(r#""open"#).is_err());
    }
}
