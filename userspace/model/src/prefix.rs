//! IP prefixes in canonical form (no host bits set).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use crate::ModelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const fn max_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// A canonical prefix. The address is kept left-aligned in 128 bits for both
/// families (IPv4 in the top 32 bits) so containment and masking are one formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    family: Family,
    bits: Bits,
    len: u8,
}

/// 128 bits as four u32 words, most significant first: ordered like the
/// u128 they stand for, but 4-byte aligned, so a prefix takes 20 bytes
/// instead of a u128's 32 (an agent holds a million of them, several times).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Bits([u32; 4]);

impl From<u128> for Bits {
    fn from(v: u128) -> Bits {
        Bits([
            (v >> 96) as u32,
            (v >> 64) as u32,
            (v >> 32) as u32,
            v as u32,
        ])
    }
}

impl From<Bits> for u128 {
    fn from(Bits(w): Bits) -> u128 {
        (w[0] as u128) << 96 | (w[1] as u128) << 64 | (w[2] as u128) << 32 | w[3] as u128
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl Prefix {
    /// A prefix from an address and a length; host bits set is an error.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, ModelError> {
        let (family, bits) = split(addr);
        if len > family.max_len() {
            return Err(ModelError::BadPrefixLength {
                input: format!("{addr}/{len}"),
                len: len.to_string(),
                max: family.max_len(),
            });
        }
        let p = Prefix {
            family,
            bits: bits.into(),
            len,
        };
        if bits & !mask(len) != 0 {
            let canonical = Prefix {
                bits: (bits & mask(len)).into(),
                ..p
            };
            return Err(ModelError::HostBitsSet {
                input: format!("{addr}/{len}"),
                canonical: canonical.to_string(),
            });
        }
        Ok(p)
    }

    /// The host prefix (/32 or /128) of an address.
    pub fn host(addr: IpAddr) -> Self {
        let (family, bits) = split(addr);
        Prefix {
            family,
            bits: bits.into(),
            len: family.max_len(),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }
    /// Prefix length in bits (0..=32 or 0..=128): not a container length,
    /// hence no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }
    /// A /32 or /128.
    pub fn is_host(&self) -> bool {
        self.len == self.family.max_len()
    }
    /// Network address, left-aligned in 128 bits.
    pub fn bits(&self) -> u128 {
        self.bits.into()
    }
    pub fn addr(&self) -> IpAddr {
        join(self.family, self.bits())
    }
    /// Network address bytes: 4 for IPv4, 16 for IPv6.
    pub fn octets(&self) -> Vec<u8> {
        match self.addr() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        let (family, bits) = split(addr);
        family == self.family && bits & mask(self.len) == self.bits()
    }

    pub fn contains(&self, other: &Prefix) -> bool {
        other.family == self.family
            && other.len >= self.len
            && other.bits() & mask(self.len) == self.bits()
    }

    /// The enclosing prefix of length `len` (<= self.len).
    pub fn truncate(&self, len: u8) -> Prefix {
        debug_assert!(len <= self.len);
        Prefix {
            family: self.family,
            bits: (self.bits() & mask(len)).into(),
            len,
        }
    }

    /// The last host inside self: in (family, address, length) order, every
    /// prefix self contains lies between self and this.
    pub fn last_host(&self) -> Prefix {
        let host_mask = !mask(self.len) & mask(self.family.max_len());
        Prefix {
            family: self.family,
            bits: (self.bits() | host_mask).into(),
            len: self.family.max_len(),
        }
    }

    /// The prefix of length `len` (>= self.len) at index `i` inside self.
    pub fn subprefix(&self, len: u8, i: u128) -> Prefix {
        debug_assert!(len >= self.len && len <= self.family.max_len());
        let shift = 128 - len as u32;
        let bits = if shift >= 128 {
            self.bits()
        } else {
            self.bits() | (i << shift)
        };
        Prefix {
            family: self.family,
            bits: bits.into(),
            len,
        }
    }
}

fn split(addr: IpAddr) -> (Family, u128) {
    match addr {
        IpAddr::V4(a) => (Family::V4, (u32::from(a) as u128) << 96),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

fn join(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

impl FromStr for Prefix {
    type Err = ModelError;

    /// `ADDR/LEN` or a bare address (a host prefix). Leading-zero IPv4 octets are
    /// refused (std's parser does), since `010.0.0.1` is ambiguous (octal?).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s
            .parse()
            .map_err(|_| ModelError::BadAddress(crate::limits::quote(addr_s, 64)))?;
        match len_s {
            None => Ok(Prefix::host(addr)),
            Some(l) => {
                let max = split(addr).0.max_len();
                let len: u8 = l
                    .parse()
                    .ok()
                    .filter(|n| *n <= max)
                    .filter(|_| !l.starts_with('+') && (l == "0" || !l.starts_with('0')))
                    .ok_or_else(|| ModelError::BadPrefixLength {
                        input: crate::limits::quote(s, 64),
                        len: crate::limits::quote(l, 16),
                        max,
                    })?;
                Prefix::new(addr, len)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The compact words order, and convert back, exactly as the u128.
        #[test]
        fn bits_order_and_round_trip_like_a_u128(a: u128, b: u128, shift in 0u32..128) {
            let b = b >> shift;
            proptest::prop_assert_eq!(Bits::from(a).cmp(&Bits::from(b)), a.cmp(&b));
            proptest::prop_assert_eq!(u128::from(Bits::from(a)), a);
        }
    }

    #[test]
    fn a_prefix_takes_20_bytes_and_an_entry_32() {
        assert_eq!(std::mem::size_of::<Prefix>(), 20);
        assert_eq!(std::mem::size_of::<crate::Entry>(), 32);
    }

    #[test]
    fn truncate_and_last_host_bound_the_contained_prefixes() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.truncate(8).to_string(), "10.0.0.0/8");
        assert_eq!(p.last_host().to_string(), "10.1.255.255/32");
        let all: Prefix = "::/0".parse().unwrap();
        assert_eq!(
            all.last_host().to_string(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
        );
        let inside: Prefix = "10.1.200.0/24".parse().unwrap();
        let after: Prefix = "10.2.0.0/16".parse().unwrap();
        assert!(p < inside && inside < p.last_host() && p.last_host() < after);
    }

    #[test]
    fn parses_and_canonicalises() {
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "203.0.113.0/24");
        assert_eq!(p.len(), 24);
        let h: Prefix = "2001:DB8::1".parse().unwrap();
        assert_eq!(h.to_string(), "2001:db8::1/128");
        assert!(h.is_host());
    }

    #[test]
    fn refuses_host_bits_and_names_the_fix() {
        let e = "203.0.113.7/24".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`203.0.113.7/24` has host bits set; did you mean 203.0.113.0/24?"
        );
    }

    #[test]
    fn refuses_bad_lengths_and_addresses() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(ModelError::BadPrefixLength { .. })
        ));
        assert!(matches!(
            "10.0.0.0/024".parse::<Prefix>(),
            Err(ModelError::BadPrefixLength { .. })
        ));
        assert!(matches!(
            "010.0.0.1".parse::<Prefix>(),
            Err(ModelError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0".parse::<Prefix>(),
            Err(ModelError::BadAddress(_))
        ));
    }

    #[test]
    fn containment() {
        let p: Prefix = "198.51.100.0/24".parse().unwrap();
        assert!(p.contains_addr("198.51.100.0".parse().unwrap()));
        assert!(p.contains_addr("198.51.100.255".parse().unwrap()));
        assert!(!p.contains_addr("198.51.101.0".parse().unwrap()));
        assert!(!p.contains_addr("198.51.99.255".parse().unwrap()));
        assert!(!p.contains_addr("::ffff:198.51.100.1".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&p));
        assert!(!p.contains(&all));
        assert_eq!(p.subprefix(26, 3).to_string(), "198.51.100.192/26");
    }
}
