//! c2wall's dataplane programs: drop packets to or from listed C&C addresses.
//!
//! Two entry points with one verdict logic ([`verdict::drop_frame`]): the XDP
//! program (`c2wall`, the default) and a tc ingress classifier (`c2wall_tc`)
//! for interfaces where XDP cannot attach or by choice.
#![no_std]
#![no_main]

mod counters;
mod dns;
mod filter;
mod keys;
mod lookup;
mod maps;
mod tables;
mod verdict;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use c2wall_xdp::parse::Frame;

use crate::verdict::{drop_frame, DROP, FOLLOW};

/// Bytes made linear before parsing at tc: Ethernet, VLAN tags, an IP header
/// with options or IPv6 extension headers, and the ports fit many times over.
/// A header chain longer than this is treated like a truncated frame (passed
/// and counted as a parse error), as XDP treats a chain beyond the frame.
const TC_PULL_BYTES: u32 = 1024;

#[xdp]
pub fn c2wall(ctx: XdpContext) -> u32 {
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    let v = drop_frame(frame, ifindex);
    // After the verdict, where every way through the headers has joined
    // (see c2wall_common::DnsScratch).
    if v & FOLLOW != 0 {
        dns::follow(&ctx, ifindex);
    }
    if v & DROP != 0 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// tc ingress (tcx or clsact, direct action). Passing returns TC_ACT_UNSPEC
/// (tcx: "next"), so programs after ours still run, as in a shared XDP chain.
#[classifier]
pub fn c2wall_tc(ctx: TcContext) -> i32 {
    // The headers may sit in paged data: make the first bytes linear, only
    // when they are not already (the pull is then a no-op we skip). A failed
    // pull leaves what is linear, which the parser bounds.
    let len = ctx.len();
    let want = if len < TC_PULL_BYTES {
        len
    } else {
        TC_PULL_BYTES
    };
    if ((ctx.data_end() - ctx.data()) as u32) < want {
        let _ = ctx.pull_data(want);
    }
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    // SAFETY: the context pointer is valid for the program's run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let v = drop_frame(frame, ifindex);
    if v & FOLLOW != 0 {
        dns::follow(&ctx, ifindex);
    }
    if v & DROP != 0 {
        TC_ACT_SHOT
    } else {
        TC_ACT_UNSPEC
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
