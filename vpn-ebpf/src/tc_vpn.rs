//! Egress on the VPN interface (a TUN device: packets start at the IP header).
//!
//! Everything routed to the pool is counted and continues to the TUN reader (the
//! daemon's slow path). Fast-path encapsulation of plaintext sessions hooks in
//! here with the PPTP/L2TP data planes (lookup in `VPN_ADDR_SESSIONS`).
use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use vpn_common::{
    counters::{Counter, DropReason},
    wire::Ipv4Hdr,
};

use crate::{packet::read_at, stats::count};

pub fn process(ctx: &TcContext) -> Result<i32, DropReason> {
    let (start, end) = (ctx.data(), ctx.data_end());
    count(Counter::TcRx);
    match read_at::<Ipv4Hdr>(start, end, 0) {
        Ok(ip) if ip.version_ihl >> 4 == 4 => count(Counter::TcToDaemon),
        _ => count(Counter::TcPassNonIpv4),
    }
    Ok(TC_ACT_OK)
}
