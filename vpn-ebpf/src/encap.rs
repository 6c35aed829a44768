//! What every fast-path tunnel shares: session lookups, per-session
//! counters, the outer IPv4 header, making room for a tunnel header, the
//! checksum-partial test, and the redirect out of the WAN.
use aya_ebpf::{
    bindings::{bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4},
    helpers::{bpf_redirect_neigh, bpf_skb_change_head},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use vpn_common::{
    counters::DropReason,
    maps::{addr_slot, DataplaneConfig, SessionEntry, SESSION_F_FAST_PATH},
    wire::{Ipv4Hdr, ETH_P_IPV4, IPPROTO_TCP, IPPROTO_UDP, PPP_ADDR_CTRL, PPP_PROTO_IPV4},
};

use crate::{
    bytes::PacketBytes,
    maps::{ADDR_CACHE, ADDR_SESSIONS, SESSIONS, SESSION_STATS},
};

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;

/// A session on the fast path, whatever its protocol.
pub fn session(idx: u32) -> Option<SessionEntry> {
    let e = *SESSIONS.get(idx)?;
    (e.flags & SESSION_F_FAST_PATH != 0).then_some(e)
}

/// The fast-path session of an inner destination, if any: this CPU's
/// cache slot first (the LPM trie walk was the costliest lookup of XDP
/// forwarding towards clients), checked against the session table, so a
/// slot never outlives its session; only sessions' own addresses are
/// cached (an address inside a routed subnet always asks the trie).
pub fn session_for(dst: u32) -> Option<(u32, SessionEntry)> {
    let slot = ADDR_CACHE.get_ptr_mut(addr_slot(dst));
    if let Some(s) = slot {
        // SAFETY: this CPU's slot; no other program runs on this CPU
        // while this one does.
        let cached = unsafe { *s };
        if cached != 0 {
            if let Some(e) = session(cached - 1).filter(|e| e.assigned_ip == dst) {
                return Some((cached - 1, e));
            }
        }
    }
    let idx = ADDR_SESSIONS.get(Key::new(32, dst)).copied()?;
    let entry = session(idx)?;
    if let Some(s) = slot.filter(|_| entry.assigned_ip == dst) {
        // SAFETY: as above.
        unsafe { *s = idx + 1 };
    }
    Some((idx, entry))
}

pub fn add_stats(idx: u32, rx: bool, bytes: u64) {
    if let Some(s) = SESSION_STATS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            if rx {
                (*s).rx_packets += 1;
                (*s).rx_bytes += bytes;
            } else {
                (*s).tx_packets += 1;
                (*s).tx_bytes += bytes;
            }
        }
    }
}

/// One's-complement sum of big-endian 16-bit words, folded.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// An outer IPv4 header (DF, TTL 64, no options) with its checksum.
pub fn ipv4_header(h: &mut [u8], proto: u8, src: u32, dst: u32, total_len: usize) {
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]);
    h[6] = 0x40; // DF
    h[7] = 0;
    h[8] = 64;
    h[9] = proto;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.to_ne_bytes());
    h[16..20].copy_from_slice(&dst.to_ne_bytes());
    let mut sum = 0u32;
    let mut i = 0;
    while i < IPV4_LEN {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        i += 2;
    }
    h[10..12].copy_from_slice(&(!fold(sum)).to_be_bytes());
}

/// True when the inner IPv4 packet at `l3` is TCP or UDP whose checksum
/// field holds only the pseudo-header sum: the kernel has not finished it
/// (CHECKSUM_PARTIAL). Encapsulated, it would leave unfinished on a path
/// that passes offload along (veth, tap), so such packets go the daemon's
/// way, where vpn0 (no offload) finishes them. A finished checksum equal
/// to its pseudo-header sum (1 in 65536) only costs that packet the slow path.
pub fn checksum_partial<P: PacketBytes>(ctx: &P, l3: usize, ip: &Ipv4Hdr) -> bool {
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    let Some(at) = l4_checksum_at(ip.proto) else {
        return false;
    };
    let Some(check) = ctx.be16(l3 + ihl + at) else {
        return false;
    };
    let l4_len = u32::from(u16::from_be(ip.total_len)).saturating_sub(ihl as u32);
    pseudo_sum_only(check, ip.proto, ip.src, ip.dst, l4_len)
}

/// Where a TCP or UDP header holds its checksum; `None`: another protocol.
#[inline(always)]
pub fn l4_checksum_at(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP => Some(6),
        _ => None,
    }
}

/// Whether `check` (host order) is the pseudo-header sum alone of a
/// protocol `proto` packet of `l4_len` bytes from `src` to `dst`
/// (network order).
#[inline(always)]
pub fn pseudo_sum_only(check: u16, proto: u8, src: u32, dst: u32, l4_len: u32) -> bool {
    let (s, d) = (u32::from_be(src), u32::from_be(dst));
    let sum = (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(proto) + l4_len;
    check == fold(sum)
}

/// The offset of the IPv4 packet in the PPP frame at `ppp` (address and
/// control field optional, a one-byte protocol allowed). `None`: another
/// protocol (LCP echo and friends), the daemon's.
#[inline(always)]
pub fn ppp_ipv4<P: PacketBytes>(ctx: &P, ppp: usize) -> Result<Option<usize>, DropReason> {
    let mut off = ppp;
    if ctx.be16(off) == Some(PPP_ADDR_CTRL) {
        off += 2;
    }
    // Two bytes, even for a one-byte protocol (an IPv4 header follows):
    // a one-byte packet read is one XDP's verifier cannot always bound.
    let word = ctx.be16(off).ok_or(DropReason::Truncated)?;
    let first = (word >> 8) as u8;
    let proto = if first & 1 == 1 {
        off += 1;
        u16::from(first) // PFC: a one-byte protocol
    } else {
        off += 2;
        word
    };
    Ok((proto == PPP_PROTO_IPV4).then_some(off))
}

/// Makes `len` bytes of room for an outer IPv4 and tunnel header in front
/// of the inner packet (`l4_flag`: the kernel's encapsulation flag for the
/// tunnel's L4). `has_eth`: the packet starts with Ethernet (WAN ingress);
/// else at IPv4 (vpn0 is L3), and a placeholder Ethernet header is added,
/// as `bpf_redirect_neigh` pulls one.
pub fn make_room(
    ctx: &TcContext,
    len: usize,
    l4_flag: u32,
    has_eth: bool,
) -> Result<(), DropReason> {
    let flags = u64::from(BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | l4_flag);
    ctx.adjust_room(len as i32, BPF_ADJ_ROOM_MAC, flags)
        .map_err(|_| DropReason::FastPathFailed)?;
    if !has_eth {
        // SAFETY: plain helper call on this program's skb.
        if unsafe { bpf_skb_change_head(ctx.skb.skb, ETH_LEN as u32, 0) } != 0 {
            return Err(DropReason::FastPathFailed);
        }
        ctx.store(12, &ETH_P_IPV4.to_be_bytes(), 0)
            .map_err(|_| DropReason::FastPathFailed)?;
    }
    Ok(())
}

/// Out of the WAN; the FIB and the neighbour table pick the next hop.
pub fn redirect_wan(cfg: &DataplaneConfig) -> i32 {
    // SAFETY: plain helper call; no neighbour parameters.
    unsafe { bpf_redirect_neigh(cfg.wan_ifindex, core::ptr::null_mut(), 0, 0) as i32 }
}
