//! LAN to WAN, a decided flow's packets (`flow.rs`, decisions #61) read
//! straight from the frame: five 8-byte loads at constant offsets, the
//! fields taken from them by shifts, where reading the headers as structs
//! goes through a buffer on the stack and LLVM keeps most fields there.
//! Anything that does not pass every check here (a frame shorter than the
//! window, another flow, a packet the stack must see) takes the full path
//! in `xdp_fwd::from_lan`, which decides it as before.
use aya_ebpf::programs::XdpContext;
use vpn_common::{
    counters::DropReason,
    maps::{DataplaneConfig, FlowKey, FlowTable},
};

use crate::{
    encap::{l4_checksum_at, pseudo_sum_only, ETH_LEN, IPV4_LEN},
    flow,
    packet::{load16, load64, ptr_at},
    xdp_fwd,
};

/// The bytes read: Ethernet, the IPv4 header (20 bytes, no options), and
/// the first six of what follows it.
const WINDOW: usize = 40;

/// `Some(action)`: the frame was a packet of a flow in table `t` under
/// generation `gen`, encapsulated and sent (or dropped). `None`: the full
/// path must look at it (the frame is unchanged).
#[inline(always)]
pub fn forward(
    ctx: &XdpContext,
    cfg: &DataplaneConfig,
    t: *mut FlowTable,
    gen: u32,
) -> Option<Result<u32, DropReason>> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let p = ptr_at::<[u8; WINDOW]>(start, end, 0).ok()?.cast::<u8>();
    // SAFETY: `ptr_at` proved the window's bytes lie inside the frame.
    let [d0, d1, d2, d3, d4] = unsafe {
        [
            load64(p),
            load64(p.add(8)),
            load64(p.add(16)),
            load64(p.add(24)),
            load64(p.add(32)),
        ]
    };
    // Little-endian words: byte `i` of a word is bits 8i to 8i + 7.
    // Bytes 12 to 14: the IPv4 ethertype, version 4 and a 20-byte header.
    if (d1 >> 32) & 0xff_ffff != 0x45_0008 {
        return None;
    }
    let tos = (d1 >> 56) as u8;
    let src = (d3 >> 16) as u32;
    let dst = (d3 >> 48) as u32 | (d4 as u32) << 16;
    let key = FlowKey::up(ctx.ingress_ifindex() as u32, src, dst, tos);
    let f = flow::hit(t, &key, gen)?;
    let inner_len = usize::from(u16::from_be(d2 as u16));
    let [ttl, proto] = ((d2 >> 48) as u16).to_le_bytes();
    // The frame is for the interface's own address (not another host's,
    // seen in promiscuous mode), no fragment, a TTL left after this hop.
    if d0 & 0xffff_ffff_ffff != flow::mac48(f)
        || (d2 >> 32) & 0xff3f != 0
        || ttl <= 1
        || ETH_LEN + inner_len > end - start
        || inner_len > f.fits as usize
    {
        return None;
    }
    if unfinished(ctx, proto, src, dst, inner_len) {
        return None;
    }
    Some(xdp_fwd::up(
        ctx,
        cfg,
        inner_len,
        xdp_fwd::one_hop(ttl, proto, d3 as u16),
        f.idx,
        f.proto,
        &f.hdr,
        f.csum0,
    ))
}

/// `encap::checksum_partial` for a packet whose IPv4 header has no
/// options: TCP or UDP whose checksum field holds only the pseudo-header
/// sum.
#[inline(always)]
fn unfinished(ctx: &XdpContext, proto: u8, src: u32, dst: u32, inner_len: usize) -> bool {
    let Some(at) = l4_checksum_at(proto) else {
        return false;
    };
    let Ok(c) = ptr_at::<u16>(ctx.data(), ctx.data_end(), ETH_LEN + IPV4_LEN + at) else {
        return false;
    };
    // SAFETY: `ptr_at` proved the two bytes lie inside the frame.
    let check = u16::from_be(unsafe { load16(c.cast()) });
    let l4_len = (inner_len as u32).saturating_sub(IPV4_LEN as u32);
    pseudo_sum_only(check, proto, src, dst, l4_len)
}
