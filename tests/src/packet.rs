//! Crafted Ethernet frames for BPF_PROG_TEST_RUN.

use std::net::IpAddr;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp(u16, u16),
    Udp(u16, u16),
    /// ICMP / ICMPv6 echo: no ports.
    Icmp,
    /// Any other protocol number, no header written.
    Raw(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V6Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header with this offset (in 8-byte units) and more-fragments flag.
    Fragment(u16, bool),
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    pub vlans: Vec<u16>,
    /// IPv4 options, in 4-byte words (0..=10).
    pub v4_option_words: u8,
    /// IPv4 fragment offset (8-byte units) and more-fragments flag.
    pub v4_fragment: (u16, bool),
    pub v6_ext: Vec<V6Ext>,
    pub payload: usize,
}

impl Frame {
    pub fn new(src: &str, dst: &str, l4: L4) -> Self {
        Frame {
            src: src.parse().expect("src"),
            dst: dst.parse().expect("dst"),
            l4,
            vlans: Vec::new(),
            v4_option_words: 0,
            v4_fragment: (0, false),
            v6_ext: Vec::new(),
            payload: 16,
        }
    }
    pub fn vlan(mut self, tpid: u16) -> Self {
        self.vlans.push(tpid);
        self
    }
    pub fn v4_options(mut self, words: u8) -> Self {
        self.v4_option_words = words;
        self
    }
    pub fn v4_fragment(mut self, offset: u16, more: bool) -> Self {
        self.v4_fragment = (offset, more);
        self
    }
    pub fn ext(mut self, e: V6Ext) -> Self {
        self.v6_ext.push(e);
        self
    }

    fn proto(&self) -> u8 {
        match (self.l4, self.src) {
            (L4::Tcp(..), _) => 6,
            (L4::Udp(..), _) => 17,
            (L4::Icmp, IpAddr::V4(_)) => 1,
            (L4::Icmp, IpAddr::V6(_)) => 58,
            (L4::Raw(p), _) => p,
        }
    }

    fn l4_bytes(&self) -> Vec<u8> {
        match self.l4 {
            L4::Tcp(s, d) => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&s.to_be_bytes());
                h[2..4].copy_from_slice(&d.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = 0x02; // SYN
                h
            }
            L4::Udp(s, d) => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&s.to_be_bytes());
                h[2..4].copy_from_slice(&d.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                h
            }
            L4::Icmp => vec![8, 0, 0, 0, 0, 1, 0, 1],
            L4::Raw(_) => Vec::new(),
        }
    }

    /// The frame and the length of its headers (everything before the payload).
    pub fn build_with_header_len(&self) -> (Vec<u8>, usize) {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        for tpid in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
        }
        let l4 = self.l4_bytes();
        // Frame whose l4 header may be absent for fragments is still written: a
        // non-first fragment's payload just happens to start with these bytes.
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let ihl = 5 + self.v4_option_words as usize;
                let total = ihl * 4 + l4.len() + self.payload;
                let mut h = vec![0u8; ihl * 4];
                h[0] = 0x40 | ihl as u8;
                h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                let frag =
                    (self.v4_fragment.0 & 0x1fff) | if self.v4_fragment.1 { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&frag.to_be_bytes());
                h[8] = 64;
                h[9] = self.proto();
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                for b in h.iter_mut().skip(20) {
                    *b = 1; // NOP options
                }
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut exts = Vec::new();
                let kinds: Vec<u8> = self
                    .v6_ext
                    .iter()
                    .map(|e| match e {
                        V6Ext::HopByHop => 0,
                        V6Ext::Routing => 43,
                        V6Ext::DestOpts => 60,
                        V6Ext::Fragment(..) => 44,
                    })
                    .collect();
                for (i, e) in self.v6_ext.iter().enumerate() {
                    let next = kinds.get(i + 1).copied().unwrap_or(self.proto());
                    match e {
                        V6Ext::Fragment(off, more) => {
                            let v = (off << 3) | *more as u16;
                            let mut h = vec![next, 0, 0, 0, 0, 0, 0, 7];
                            h[2..4].copy_from_slice(&v.to_be_bytes());
                            exts.extend_from_slice(&h);
                        }
                        V6Ext::Routing => {
                            // Type 0 header with one address: 24 bytes, hdr ext len 2.
                            let mut h = vec![0u8; 24];
                            h[0] = next;
                            h[1] = 2;
                            exts.extend_from_slice(&h);
                        }
                        _ => {
                            // 16 bytes: hdr ext len 1, PadN filling the rest.
                            let mut h = vec![0u8; 16];
                            h[0] = next;
                            h[1] = 1;
                            h[2] = 1;
                            h[3] = 12;
                            exts.extend_from_slice(&h);
                        }
                    }
                }
                let first = kinds.first().copied().unwrap_or(self.proto());
                let plen = exts.len() + l4.len() + self.payload;
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
                h[6] = first;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
                f.extend_from_slice(&exts);
            }
            _ => panic!("mixed address families"),
        }
        f.extend_from_slice(&l4);
        let header_len = f.len();
        f.extend(std::iter::repeat_n(0xab, self.payload));
        (f, header_len)
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_header_len().0
    }

    /// The frame carrying `payload` (a DNS message, say) after its headers.
    pub fn carrying(&self, payload: &[u8]) -> Vec<u8> {
        let mut f = self.clone();
        f.payload = payload.len();
        let (mut bytes, header_len) = f.build_with_header_len();
        bytes[header_len..].copy_from_slice(payload);
        bytes
    }
}

/// A frame of an unrelated EtherType (ARP).
pub fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0u8; 28]);
    f
}
