//! vpn-ctl data plane. One entry point per attach point; all state lives in
//! `maps.rs`, all packet access goes through `packet.rs`.
#![no_std]
#![no_main]
// Inline BPF assembly (the GRE sequence fetch-add in pptp.rs).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod bytes;
mod encap;
mod flow;
mod frame;
mod l2tp;
mod lan_hit;
mod maps;
mod packet;
mod pptp;
mod stats;
mod tc_vpn;
mod tc_wan;
mod template;
mod tunnel;
mod xdp_fwd;
mod xdp_wan;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// XDP on the WAN interface: classify, anti-spoof, count.
#[xdp]
pub fn vpn_xdp_wan(ctx: XdpContext) -> u32 {
    match xdp_wan::process(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            stats::drop(reason);
            xdp_action::XDP_DROP
        }
    }
}

/// XDP on each forwarding (LAN) interface: packets for fast-path clients
/// are encapsulated and sent out of the WAN (decisions #54).
#[xdp]
pub fn vpn_xdp_lan(ctx: XdpContext) -> u32 {
    match xdp_fwd::from_lan(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            stats::drop(reason);
            xdp_action::XDP_DROP
        }
    }
}

/// TC egress on the VPN interface: traffic routed towards clients.
#[classifier]
pub fn vpn_tc_egress(ctx: TcContext) -> i32 {
    match tc_vpn::process(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            stats::drop(reason);
            aya_ebpf::bindings::TC_ACT_SHOT
        }
    }
}

/// TC ingress on the WAN interface: the fast paths' decapsulation.
#[classifier]
pub fn vpn_tc_wan_ingress(ctx: TcContext) -> i32 {
    match tc_wan::ingress(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            stats::drop(reason);
            aya_ebpf::bindings::TC_ACT_SHOT
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
