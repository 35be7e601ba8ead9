//! An entry's wire form encoded straight into a buffer, byte for byte what
//! prost writes for [`entry_to_wire`](super::entry_to_wire), without building
//! the message: no key message, no prefix string per entry. A million-entry
//! snapshot (the coordinator's, for agents) and a subscriber's saved set are
//! a million of these.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::{action_to_wire, direction_to_wire, key::scope_to_wire};
use crate::{Entry, Target};

/// Appends `entry_to_wire(e)` as field `field` (length-delimited) of the
/// message being encoded in `out`.
pub fn encode_entry_field(field: u32, e: &Entry, out: &mut Vec<u8>) {
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    TEXT.with_borrow_mut(|text| {
        text.clear();
        // `EntryKey`: the prefix (1) or the domain (4) as text, protocol (2)
        // and port (3); proto3 leaves zero values out.
        let (text_field, protocol, port) = match &e.target {
            Target::Prefix(p) => {
                p.write_text(text);
                let (protocol, port) = scope_to_wire(e.scope);
                (1, protocol as u64, port as u64)
            }
            Target::Domain(d) => {
                use std::fmt::Write as _;
                write!(text, "{d}").expect("writing to a String");
                (4, 0, 0)
            }
        };
        let key_len = bytes_len(text.len()) + varint_len(protocol) + varint_len(port);
        let (direction, action) = (
            direction_to_wire(e.direction) as u64,
            action_to_wire(e.action) as u64,
        );
        let entry_len = bytes_len(key_len) + varint_len(direction) + varint_len(action);
        encode_key(field, WireType::LengthDelimited, out);
        encode_varint(entry_len as u64, out);
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(key_len as u64, out);
        if text_field == 1 {
            put_bytes(1, text.as_bytes(), out);
        }
        put_varint(2, protocol, out);
        put_varint(3, port, out);
        if text_field == 4 {
            put_bytes(4, text.as_bytes(), out);
        }
        put_varint(2, direction, out);
        put_varint(3, action, out);
    })
}

/// A length-delimited field of `n` bytes (fields 1-15: a one-byte key),
/// left out when empty.
fn bytes_len(n: usize) -> usize {
    match n {
        0 => 0,
        n => 1 + encoded_len_varint(n as u64) + n,
    }
}

/// A varint field (fields 1-15), left out when zero.
fn varint_len(v: u64) -> usize {
    match v {
        0 => 0,
        v => 1 + encoded_len_varint(v),
    }
}

fn put_bytes(field: u32, b: &[u8], out: &mut Vec<u8>) {
    if !b.is_empty() {
        encode_key(field, WireType::LengthDelimited, out);
        encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
}

fn put_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(field, WireType::Varint, out);
        encode_varint(v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{text::every_shape, wire::entry_to_wire};

    #[test]
    fn the_bytes_are_what_prost_writes_for_the_wire_entry() {
        let targets = [
            "192.0.2.1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "2001:db8::/32",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128",
            "evil.example",
            "*.a-much-longer-name-than-most.example",
        ];
        let entries = every_shape(&targets);
        assert_eq!(entries.len(), (5 * 3 + 2) * 6);
        for e in &entries {
            for field in [1, 5, 15] {
                let (mut ours, mut prost) = (vec![7], vec![7]);
                encode_entry_field(field, e, &mut ours);
                prost::encoding::message::encode(field, &entry_to_wire(e), &mut prost);
                assert_eq!(ours, prost, "{e} as field {field}");
            }
        }
    }
}
