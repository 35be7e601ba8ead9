//! The STIX 2.x patterning language, parsed with a real grammar (observation
//! expressions with AND / OR / FOLLOWEDBY and qualifiers, comparison
//! expressions with AND / OR / NOT, parentheses, every operator and literal
//! kind), then reduced to what a blocklist can use: the destination addresses
//! each alternative names, with the port and protocol it is bound to.
//!
//! Addresses come from `ipv4-addr:value`, `ipv6-addr:value` and
//! `network-traffic:dst_ref.value` compared with `=`, `IN` or `ISSUBSET`;
//! `network-traffic:dst_port` and `network-traffic:protocols[*]` narrow them.
//! Names come from `domain-name:value`, from the host of `url:value`, and
//! from `network-traffic:dst_ref.value` when it is a name. Negated
//! comparisons and source addresses never produce a block.

use c2wall_model::{Protocol, Target};

use crate::text;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Word(String),
    Op(String),
    Str(String),
    Num(String),
    /// t'...', b'...', h'...'
    Typed(char, String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '[' => (out.push(Tok::LBracket), i += 1).1,
            ']' => (out.push(Tok::RBracket), i += 1).1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '=' => (out.push(Tok::Op("=".into())), i += 1).1,
            '!' | '<' | '>' => {
                let two = cs.get(i + 1) == Some(&'=');
                let op: String = if two {
                    [c, '='].iter().collect()
                } else {
                    c.to_string()
                };
                if op == "!" {
                    return Err(format!("`!` without `=` at {i}"));
                }
                i += op.len();
                out.push(Tok::Op(op));
            }
            '\'' => {
                let (v, next) = string(&cs, i + 1)?;
                out.push(Tok::Str(v));
                i = next;
            }
            c if c.is_ascii_digit()
                || c == '-' && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit()) =>
            {
                let start = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(cs[start..i].iter().collect()));
            }
            c if (c == 't' || c == 'b' || c == 'h') && cs.get(i + 1) == Some(&'\'') => {
                let (v, next) = string(&cs, i + 2)?;
                out.push(Tok::Typed(c, v));
                i = next;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                // Object paths: type ':' path with '.', '-', '[n]' / '[*]' parts.
                while i < cs.len() {
                    let d = cs[i];
                    if d.is_ascii_alphanumeric() || matches!(d, '_' | '-' | ':' | '.') {
                        i += 1;
                    } else if d == '\'' && cs[i - 1] == '.' {
                        // A quoted path key: file:hashes.'SHA-256'
                        let (_, next) = string(&cs, i + 1)?;
                        i = next;
                    } else if d == '[' && is_index(&cs, i) {
                        while cs[i] != ']' {
                            i += 1;
                        }
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(cs[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected `{other}` at {i}")),
        }
    }
    Ok(out)
}

/// `[*]` or `[123]` inside an object path.
fn is_index(cs: &[char], i: usize) -> bool {
    let mut j = i + 1;
    if cs.get(j) == Some(&'*') {
        return cs.get(j + 1) == Some(&']');
    }
    let start = j;
    while cs.get(j).is_some_and(|c| c.is_ascii_digit()) {
        j += 1;
    }
    j > start && cs.get(j) == Some(&']')
}

fn string(cs: &[char], mut i: usize) -> Result<(String, usize), String> {
    let mut v = String::new();
    while i < cs.len() {
        match cs[i] {
            '\\' if i + 1 < cs.len() => {
                v.push(cs[i + 1]);
                i += 2;
            }
            '\'' => return Ok((v, i + 1)),
            c => {
                v.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string".into())
}

/// One alternative of a comparison expression: what it binds together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alt {
    /// Addresses and names (a name takes no port: resolvers see names only).
    pub addrs: Vec<Target>,
    pub ports: Vec<u16>,
    pub protocols: Vec<Protocol>,
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

type R<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn expect(&mut self, t: Tok) -> R<()> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(format!("expected {t:?}, found {other:?}")),
        }
    }

    // Observation expressions: the union of their alternatives.
    fn obs_or(&mut self) -> R<Vec<Alt>> {
        let mut out = self.obs_and()?;
        while self.word("OR") {
            self.at += 1;
            out.extend(self.obs_and()?);
        }
        Ok(out)
    }
    fn obs_and(&mut self) -> R<Vec<Alt>> {
        let mut out = self.obs_followed()?;
        while self.word("AND") {
            self.at += 1;
            out.extend(self.obs_followed()?);
        }
        Ok(out)
    }
    fn obs_followed(&mut self) -> R<Vec<Alt>> {
        let mut out = self.obs_atom()?;
        while self.word("FOLLOWEDBY") {
            self.at += 1;
            out.extend(self.obs_atom()?);
        }
        Ok(out)
    }
    fn obs_atom(&mut self) -> R<Vec<Alt>> {
        let out = match self.next() {
            Some(Tok::LBracket) => {
                let alts = self.cmp_or()?;
                self.expect(Tok::RBracket)?;
                alts
            }
            Some(Tok::LParen) => {
                let alts = self.obs_or()?;
                self.expect(Tok::RParen)?;
                alts
            }
            other => return Err(format!("expected `[` or `(`, found {other:?}")),
        };
        self.qualifiers()?;
        Ok(out)
    }
    fn qualifiers(&mut self) -> R<()> {
        loop {
            if self.word("WITHIN") {
                self.at += 1;
                self.num()?;
                self.keyword("SECONDS")?;
            } else if self.word("REPEATS") {
                self.at += 1;
                self.num()?;
                self.keyword("TIMES")?;
            } else if self.word("START") {
                self.at += 1;
                self.timestamp()?;
                self.keyword("STOP")?;
                self.timestamp()?;
            } else {
                return Ok(());
            }
        }
    }
    fn keyword(&mut self, k: &str) -> R<()> {
        if self.word(k) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {k}, found {:?}", self.peek()))
        }
    }
    fn num(&mut self) -> R<String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
    fn timestamp(&mut self) -> R<()> {
        match self.next() {
            Some(Tok::Typed('t', _)) => Ok(()),
            other => Err(format!("expected t'...', found {other:?}")),
        }
    }

    // Comparison expressions: OR is a union, AND a product of alternatives.
    fn cmp_or(&mut self) -> R<Vec<Alt>> {
        let mut out = self.cmp_and()?;
        while self.word("OR") {
            self.at += 1;
            out.extend(self.cmp_and()?);
        }
        Ok(out)
    }
    fn cmp_and(&mut self) -> R<Vec<Alt>> {
        let mut out = self.cmp_atom()?;
        while self.word("AND") {
            self.at += 1;
            let rhs = self.cmp_atom()?;
            let mut product = Vec::new();
            for a in &out {
                for b in &rhs {
                    let mut m = a.clone();
                    m.addrs.extend(b.addrs.iter().cloned());
                    m.ports.extend(&b.ports);
                    m.protocols.extend(&b.protocols);
                    product.push(m);
                }
            }
            out = product;
        }
        Ok(out)
    }
    fn cmp_atom(&mut self) -> R<Vec<Alt>> {
        if self.peek() == Some(&Tok::LParen) {
            self.at += 1;
            let alts = self.cmp_or()?;
            self.expect(Tok::RParen)?;
            return Ok(alts);
        }
        let path = match self.next() {
            Some(Tok::Word(w)) if w.contains(':') => w,
            other => return Err(format!("expected an object path, found {other:?}")),
        };
        let negated = self.word("NOT");
        if negated {
            self.at += 1;
        }
        let op = match self.next() {
            Some(Tok::Op(o)) => o,
            Some(Tok::Word(w))
                if ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                w.to_ascii_uppercase()
            }
            other => {
                return Err(format!(
                    "expected an operator after {path}, found {other:?}"
                ))
            }
        };
        let values = self.value()?;
        comparison(&path, negated, &op, &values)
    }
    fn value(&mut self) -> R<Vec<Tok>> {
        match self.next() {
            Some(Tok::LParen) => {
                let mut vs = Vec::new();
                loop {
                    vs.extend(self.value()?);
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => return Ok(vs),
                        other => return Err(format!("expected `,` or `)`, found {other:?}")),
                    }
                }
            }
            Some(t @ (Tok::Str(_) | Tok::Num(_) | Tok::Typed(..))) => Ok(vec![t]),
            Some(Tok::Word(w)) if w == "true" || w == "false" => Ok(vec![Tok::Word(w)]),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

/// One comparison as alternatives: the addresses (or port, protocol) it names.
/// Anything we do not block on is one empty alternative (it narrows nothing).
fn comparison(path: &str, negated: bool, op: &str, values: &[Tok]) -> R<Vec<Alt>> {
    let positive = !negated && matches!(op, "=" | "IN" | "ISSUBSET");
    let strings = || {
        values.iter().filter_map(|v| match v {
            Tok::Str(s) => Some(s.as_str()),
            _ => None,
        })
    };
    if !positive {
        return Ok(vec![Alt::default()]);
    }
    match path {
        "ipv4-addr:value" | "ipv6-addr:value" => {
            let mut alts = Vec::new();
            for s in strings() {
                alts.push(Alt {
                    addrs: vec![text::prefix(s.trim())?.into()],
                    ..Default::default()
                });
            }
            Ok(alts)
        }
        "network-traffic:dst_ref.value" | "domain-name:value" | "url:value" => {
            let mut alts = Vec::new();
            for s in strings() {
                let s = s.trim();
                let t = match path {
                    "url:value" => text::url_host(s)?,
                    "domain-name:value" => text::domain(s)?.into(),
                    // An address, else a name (dst_ref may be a domain-name).
                    _ => match text::prefix(s) {
                        Ok(p) => p.into(),
                        Err(e)
                            if s.chars().any(|c| c.is_ascii_alphabetic()) && !s.contains(':') =>
                        {
                            text::domain(s)
                                .map_err(|d| format!("{e}; as a name: {d}"))?
                                .into()
                        }
                        Err(e) => return Err(e),
                    },
                };
                alts.push(Alt {
                    addrs: vec![t],
                    ..Default::default()
                });
            }
            Ok(alts)
        }
        "network-traffic:dst_port" => {
            let mut alts = Vec::new();
            for v in values {
                let Tok::Num(n) = v else {
                    return Err(format!("dst_port: {v:?} is not a number"));
                };
                alts.push(Alt {
                    ports: vec![text::port(n)?],
                    ..Default::default()
                });
            }
            Ok(alts)
        }
        p if p.starts_with("network-traffic:protocols[") => {
            let mut alts = Vec::new();
            for s in strings() {
                let protocols = match s.to_ascii_lowercase().as_str() {
                    "tcp" => vec![Protocol::Tcp],
                    "udp" => vec![Protocol::Udp],
                    _ => vec![],
                };
                alts.push(Alt {
                    protocols,
                    ..Default::default()
                });
            }
            Ok(alts)
        }
        _ => Ok(vec![Alt::default()]),
    }
}

/// The alternatives of a whole pattern, or why it does not parse.
pub fn parse(pattern: &str) -> Result<Vec<Alt>, String> {
    let mut p = Parser {
        toks: lex(pattern)?,
        at: 0,
    };
    let alts = p.obs_or()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the pattern"));
    }
    Ok(alts)
}

#[cfg(test)]
mod tests;
