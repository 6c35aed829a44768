//! Egress on the VPN interface (a TUN device: packets start at the IP header).
//!
//! Packets to a fast-path client are encapsulated for its protocol and
//! sent out of the WAN here; everything else is counted and continues to
//! the TUN reader (the daemon's slow path).
use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::PROTO_PPTP,
    wire::Ipv4Hdr,
};

use crate::{
    encap::{checksum_partial, redirect_wan, session_for},
    maps::CONFIG,
    packet::read_at,
    stats::count,
    tc_wan,
};

pub fn process(ctx: &TcContext) -> Result<i32, DropReason> {
    let (start, end) = (ctx.data(), ctx.data_end());
    count(Counter::TcRx);
    match read_at::<Ipv4Hdr>(start, end, 0) {
        Ok(ip) if ip.version_ihl >> 4 == 4 => {
            if let Some(action) = fast(ctx, &ip)? {
                return Ok(action);
            }
            count(Counter::TcToDaemon)
        }
        _ => count(Counter::TcPassNonIpv4),
    }
    Ok(TC_ACT_OK)
}

/// `Ok(None)`: not for a fast-path client (or not fit for the kernel's path).
fn fast(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Option<i32>, DropReason> {
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(None);
    };
    if !tc_wan::any_fast_path(cfg) {
        return Ok(None);
    }
    let Some((idx, entry)) = session_for(ip.dst) else {
        return Ok(None);
    };
    // An unfinished checksum, or a GSO burst PPTP's numbered GRE cannot be
    // split into: the daemon's way (vpn0 finishes and splits them).
    // SAFETY: reading a field of this program's context.
    let gso = entry.proto == PROTO_PPTP && unsafe { (*ctx.skb.skb).gso_segs } > 1;
    if gso || checksum_partial(ctx, 0, ip) {
        count(Counter::FastCsumToDaemon);
        return Ok(None);
    }
    let inner_len = ctx.len() as usize;
    tc_wan::push(ctx, idx, &entry, inner_len, false)?;
    count(Counter::FastTx);
    Ok(Some(redirect_wan(cfg)))
}
