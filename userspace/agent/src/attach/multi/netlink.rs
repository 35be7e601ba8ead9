//! The two rtnetlink requests the dispatcher protocol needs: which XDP
//! program an interface runs (RTM_GETLINK, IFLA_XDP), and replacing it only
//! if it is still the one we read (RTM_SETLINK with XDP_FLAGS_REPLACE and
//! IFLA_XDP_EXPECTED_FD), which is how libxdp swaps dispatchers atomically.
//! BPF links cannot do the second for a program another tool attached.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const NETLINK_ROUTE: i32 = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_EXPECTED_FD: u16 = 8;

pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_REPLACE: u32 = 16;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;

/// The XDP program on an interface and the mode it runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    pub prog_id: u32,
    /// XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE.
    pub mode_flag: u32,
}

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a socket we own.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one request and returns the replies up to the ack or error.
    fn request(&self, msg: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: msg is a valid buffer of msg.len() bytes; the kernel is the
        // default destination of a netlink socket.
        let sent = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut data = &buf[..n as usize];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
                if len < 16 || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short netlink message",
                    ));
                }
                if ty == NLMSG_ERROR {
                    let code = i32::from_ne_bytes(data[16..20].try_into().expect("4 bytes"));
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    return Ok(out);
                }
                out.push(data[..len].to_vec());
                if ty == RTM_NEWLINK {
                    // A GETLINK for one index answers with one message and no ack.
                    return Ok(out);
                }
                data = &data[align(len).min(data.len())..];
            }
        }
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn header(ty: u16, flags: u16, ifindex: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish()
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
                                              // struct ifinfomsg
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

fn attr(m: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    m.extend_from_slice(&(len as u16).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(align(m.len()), 0);
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// Attributes in `data` as (type without flags, payload).
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let ty = u16::from_ne_bytes([data[2], data[3]]) & !NLA_F_NESTED;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((ty, &data[4..len]));
        data = &data[align(len).min(data.len())..];
    }
    out
}

/// The XDP program attached to `ifindex` (None: none).
pub fn query(ifindex: u32) -> io::Result<Option<Attached>> {
    let sock = Socket::open()?;
    let replies = sock.request(&finish(header(RTM_GETLINK, 0, ifindex)))?;
    for r in &replies {
        // nlmsghdr (16) + ifinfomsg (16)
        for (ty, payload) in attrs(r.get(32..).unwrap_or_default()) {
            if ty != IFLA_XDP {
                continue;
            }
            let mut mode = 0u8;
            let mut id = 0u32;
            for (t, p) in attrs(payload) {
                match t {
                    IFLA_XDP_ATTACHED if !p.is_empty() => mode = p[0],
                    IFLA_XDP_PROG_ID if p.len() >= 4 => {
                        id = u32::from_ne_bytes(p[..4].try_into().expect("4 bytes"))
                    }
                    _ => {}
                }
            }
            let mode_flag = match mode {
                XDP_ATTACHED_DRV => XDP_FLAGS_DRV_MODE,
                XDP_ATTACHED_SKB => XDP_FLAGS_SKB_MODE,
                _ => return Ok(None),
            };
            return Ok((id != 0).then_some(Attached {
                prog_id: id,
                mode_flag,
            }));
        }
    }
    Ok(None)
}

/// Puts `prog` (None: nothing) on `ifindex` in `mode_flag`, replacing
/// `expected` only if it is still attached (None: only if nothing is).
pub fn replace(
    ifindex: u32,
    prog: Option<BorrowedFd<'_>>,
    expected: Option<BorrowedFd<'_>>,
    mode_flag: u32,
) -> io::Result<()> {
    let mut m = header(RTM_SETLINK, NLM_F_ACK, ifindex);
    let mut nested = Vec::new();
    let fd = prog.map(|p| p.as_raw_fd()).unwrap_or(-1);
    attr(&mut nested, IFLA_XDP_FD, &fd.to_ne_bytes());
    let flags = mode_flag
        | match expected {
            Some(_) => XDP_FLAGS_REPLACE,
            None => XDP_FLAGS_UPDATE_IF_NOEXIST,
        };
    attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    if let Some(e) = expected {
        attr(
            &mut nested,
            IFLA_XDP_EXPECTED_FD,
            &e.as_raw_fd().to_ne_bytes(),
        );
    }
    attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
    Socket::open()?.request(&finish(m)).map(|_| ())
}
