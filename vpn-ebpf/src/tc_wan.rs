//! TC ingress on the WAN: the fast paths' decapsulation, one flow for every
//! tunnel protocol. The protocol's header code (`pptp`, `l2tp`) finds the
//! session key and the PPP frame; here the session is looked up, the PPP
//! header skipped, the inner source checked against the session's address,
//! the tunnel headers stripped, and the packet redirected into vpn0's
//! ingress, or, for another fast-path client, straight back out (hairpin).
//! Everything not ours to shortcut continues to the stack and the daemon.
use aya_ebpf::{
    bindings::{bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, BPF_F_INGRESS, TC_ACT_OK},
    helpers::bpf_redirect,
    programs::TcContext,
};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{
        DataplaneConfig, SessionEntry, CONFIG_F_CLIENT_ISOLATION, CONFIG_F_VALID, PROTO_L2TP,
        PROTO_PPTP,
    },
    wire::{Ipv4Hdr, ETH_P_IPV4, IPPROTO_UDP, PORT_DHCP_SERVER},
};

use crate::{
    bytes::PacketBytes,
    encap::{self, add_stats, checksum_partial, session_for, ETH_LEN},
    l2tp,
    maps::CONFIG,
    pptp,
    stats::count,
    tunnel,
};

pub fn ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(TC_ACT_OK);
    };
    if cfg.flags & CONFIG_F_VALID == 0 || ctx.be16(12) != Some(ETH_P_IPV4) {
        return Ok(TC_ACT_OK);
    }
    let Ok(ip) = ctx.load::<Ipv4Hdr>(ETH_LEN) else {
        return Ok(TC_ACT_OK);
    };
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    if ip.version_ihl >> 4 != 4 || ihl < 20 || u16::from_be(ip.frag_off) & 0x3fff != 0 {
        return Ok(TC_ACT_OK);
    }
    // A frame shorter than its IPv4 length is the stack's to drop (and
    // count): nothing in it is forwarded from here.
    if ETH_LEN + usize::from(u16::from_be(ip.total_len)) > ctx.len() as usize {
        return Ok(TC_ACT_OK);
    }
    let l4 = ETH_LEN + ihl;
    let Some(tunnel::Arrived { idx, entry, ppp }) = tunnel::arrived(ctx, &ip, l4, cfg) else {
        return Ok(TC_ACT_OK);
    };
    let Some(off) = encap::ppp_ipv4(ctx, ppp)? else {
        count(Counter::FastToDaemon);
        return Ok(TC_ACT_OK); // LCP echo and friends: the daemon's
    };
    let inner = ctx
        .load::<Ipv4Hdr>(off)
        .map_err(|_| DropReason::Truncated)?;
    if inner.src != entry.assigned_ip {
        return Err(DropReason::SpoofedInnerSource);
    }
    // The inner packet must be whole within the frame.
    if off + usize::from(u16::from_be(inner.total_len)) > ctx.len() as usize {
        return Err(DropReason::Truncated);
    }
    // DHCP to the server port (Windows' DHCPINFORM for routes): the
    // daemon answers it, so it stays encapsulated.
    let inner_ihl = usize::from(inner.version_ihl & 0x0f) * 4;
    if inner.proto == IPPROTO_UDP && ctx.be16(off + inner_ihl + 2) == Some(PORT_DHCP_SERVER) {
        count(Counter::FastToDaemon);
        return Ok(TC_ACT_OK);
    }
    let strip = (off - ETH_LEN) as i32;
    ctx.adjust_room(-strip, BPF_ADJ_ROOM_MAC, 0)
        .map_err(|_| DropReason::FastPathFailed)?;
    let inner_len = ctx.len() as usize - ETH_LEN;
    add_stats(idx, true, inner_len as u64);
    count(Counter::FastRx);
    // Client to client, both on the fast path: straight back out, the stack
    // never sees it (unless its checksum is unfinished: see checksum_partial).
    let isolated = cfg.flags & CONFIG_F_CLIENT_ISOLATION != 0;
    if let Some((to, to_entry)) = session_for(inner.dst).filter(|_| !isolated) {
        if !checksum_partial(ctx, ETH_LEN, &inner) {
            push(ctx, to, &to_entry, inner_len, true)?;
            count(Counter::FastHairpin);
            return Ok(encap::redirect_wan(cfg));
        }
    }
    // SAFETY: plain helper call.
    Ok(unsafe { bpf_redirect(cfg.vpn_ifindex, u64::from(BPF_F_INGRESS)) } as i32)
}

/// Pushes session `idx`'s tunnel headers, by its protocol, and counts it.
pub fn push(
    ctx: &TcContext,
    idx: u32,
    entry: &SessionEntry,
    inner_len: usize,
    has_eth: bool,
) -> Result<(), DropReason> {
    match entry.proto {
        PROTO_PPTP => pptp::push(ctx, idx, entry, inner_len, has_eth)?,
        PROTO_L2TP => l2tp::push(ctx, entry, inner_len, has_eth)?,
        _ => return Err(DropReason::FastPathFailed),
    }
    add_stats(idx, false, inner_len as u64);
    Ok(())
}

/// Whether the data plane was told to carry anything in the kernel.
pub fn any_fast_path(cfg: &DataplaneConfig) -> bool {
    cfg.pptp_enabled != 0 || cfg.l2tp_port != 0
}
