//! Egress on the VPN interface (a TUN device: packets start at the IP header).
//!
//! Packets to a PPTP fast-path client are encapsulated and sent out of the
//! WAN here (`pptp_fast`); everything else is counted and continues to the
//! TUN reader (the daemon's slow path).
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
        Ok(ip) if ip.version_ihl >> 4 == 4 => {
            if let Some(action) = crate::pptp_fast::egress(ctx, &ip)? {
                return Ok(action);
            }
            count(Counter::TcToDaemon)
        }
        _ => count(Counter::TcPassNonIpv4),
    }
    Ok(TC_ACT_OK)
}
