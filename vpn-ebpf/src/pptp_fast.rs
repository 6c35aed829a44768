//! PPTP's in-kernel fast path for sessions without MPPE (docs/decisions.md
//! #27). WAN ingress: strip IPv4+GRE+PPP from a fast-path call's IP packets
//! (inner source checked) and redirect them into vpn0's ingress. vpn0
//! egress: push IPv4+GRE+PPP for packets to a fast-path client and redirect
//! them out of the WAN. Everything else stays on the slow path.
use aya_ebpf::{
    bindings::{
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4,
        BPF_F_ADJ_ROOM_ENCAP_L4_GRE, BPF_F_INGRESS, TC_ACT_OK,
    },
    helpers::{bpf_redirect, bpf_redirect_neigh, bpf_skb_change_head},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{SessionEntry, TunnelKey, CONFIG_F_VALID, PROTO_PPTP, SESSION_F_FAST_PATH},
    wire::{
        Ipv4Hdr, GRE_F_ACK, GRE_F_KEY, GRE_F_SEQ, GRE_PROTO_PPP, GRE_VERSION_MASK, GRE_VERSION_PPTP,
    },
};

use crate::{
    maps::{ADDR_SESSIONS, CONFIG, GRE_SEQ, SESSIONS, SESSION_STATS, TUNNEL_SESSIONS},
    stats::count,
};

const ETH_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_GRE: u8 = 47;
const PPP_IPV4: u16 = 0x0021;
/// Outer IPv4 (20) + GRE with key, sequence and ack (16) + PPP FF 03 00 21 (4).
const ENCAP_LEN: usize = 40;

/// Atomic fetch-add of 1 (BPF_ATOMIC | BPF_FETCH on BPF).
///
/// # Safety
/// `p` points at a valid, aligned u64 that is only changed atomically.
#[inline(always)]
unsafe fn fetch_add(p: *mut u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut v: u64 = 1;
        // SAFETY: as the caller promises. BPF_ATOMIC | BPF_FETCH | BPF_ADD
        // (kernel 5.12+), written out because core has no 64-bit atomic RMW
        // for BPF and rustc asks bpf-linker for the generic CPU.
        unsafe {
            core::arch::asm!(
                "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
                p = in(reg) p,
                v = inout(reg) v,
            );
        }
        v
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as the caller promises.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(p)
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
    }
}

fn be16(ctx: &TcContext, off: usize) -> Option<u16> {
    ctx.load::<u16>(off).ok().map(u16::from_be)
}

fn session(idx: u32) -> Option<SessionEntry> {
    let e = *SESSIONS.get(idx)?;
    (e.flags & SESSION_F_FAST_PATH != 0 && e.proto == PROTO_PPTP).then_some(e)
}

fn add_stats(idx: u32, rx: bool, bytes: u64) {
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

/// WAN ingress. `Ok(TC_ACT_OK)` for everything not ours to shortcut.
pub fn ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(TC_ACT_OK);
    };
    if cfg.flags & CONFIG_F_VALID == 0 || cfg.pptp_enabled == 0 || be16(ctx, 12) != Some(ETH_P_IP) {
        return Ok(TC_ACT_OK);
    }
    let Ok(ip) = ctx.load::<Ipv4Hdr>(ETH_LEN) else {
        return Ok(TC_ACT_OK);
    };
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    if ip.version_ihl >> 4 != 4
        || ip.proto != IPPROTO_GRE
        || ihl < 20
        || u16::from_be(ip.frag_off) & 0x3fff != 0
    {
        return Ok(TC_ACT_OK);
    }
    let g = ETH_LEN + ihl;
    let (Some(flags), Some(proto), Some(len), Some(call_id)) = (
        be16(ctx, g),
        be16(ctx, g + 2),
        be16(ctx, g + 4),
        be16(ctx, g + 6),
    ) else {
        return Ok(TC_ACT_OK);
    };
    if flags & GRE_VERSION_MASK != GRE_VERSION_PPTP
        || flags & GRE_F_KEY == 0
        || proto != GRE_PROTO_PPP
    {
        return Ok(TC_ACT_OK);
    }
    let key = TunnelKey {
        peer_ip: ip.src,
        local_id: u32::from(call_id),
        proto: PROTO_PPTP,
        _pad: [0; 3],
    };
    // SAFETY: the value is a plain u32 copied out at once.
    let Some(idx) = (unsafe { TUNNEL_SESSIONS.get(key) }).copied() else {
        return Ok(TC_ACT_OK);
    };
    let Some(entry) = session(idx) else {
        return Ok(TC_ACT_OK);
    };
    let mut off = g + 8;
    if flags & GRE_F_SEQ != 0 {
        let seq = ctx
            .load::<u32>(off)
            .map(u32::from_be)
            .map_err(|_| DropReason::Truncated)?;
        if let Some(s) = GRE_SEQ.get_ptr_mut(idx) {
            // SAFETY: a valid slot of the shared array; racing writers store
            // nearby values, and acks only need a recent one.
            unsafe {
                if (*s).have_in == 0 || (seq.wrapping_sub((*s).seq_in) as i32) > 0 {
                    (*s).seq_in = seq;
                    (*s).have_in = 1;
                }
            }
        }
        off += 4;
    }
    if flags & GRE_F_ACK != 0 {
        off += 4;
    }
    if len == 0 {
        return Ok(TC_ACT_OK); // ack-only: the daemon ignores it
    }
    if be16(ctx, off) == Some(0xff03) {
        off += 2;
    }
    let first = ctx.load::<u8>(off).map_err(|_| DropReason::Truncated)?;
    let ppp_proto = if first & 1 == 1 {
        off += 1;
        u16::from(first)
    } else {
        let p = be16(ctx, off).ok_or(DropReason::Truncated)?;
        off += 2;
        p
    };
    if ppp_proto != PPP_IPV4 {
        count(Counter::FastToDaemon);
        return Ok(TC_ACT_OK); // LCP echo and friends: the daemon's
    }
    let inner_src = ctx
        .load::<u32>(off + 12)
        .map_err(|_| DropReason::Truncated)?;
    if inner_src != entry.assigned_ip {
        return Err(DropReason::SpoofedInnerSource);
    }
    let inner_dst = ctx
        .load::<u32>(off + 16)
        .map_err(|_| DropReason::Truncated)?;
    let strip = (off - ETH_LEN) as i32;
    ctx.adjust_room(-strip, BPF_ADJ_ROOM_MAC, 0)
        .map_err(|_| DropReason::FastPathFailed)?;
    let inner_len = ctx.len() as usize - ETH_LEN;
    add_stats(idx, true, inner_len as u64);
    count(Counter::FastRx);
    // Client to client, both on the fast path: straight back out, the stack
    // never sees it.
    if let Some((to, to_entry)) = session_for(inner_dst) {
        encap(ctx, to, &to_entry, inner_len, true)?;
        count(Counter::FastHairpin);
        // SAFETY: plain helper call; the FIB decides the next hop.
        return Ok(
            unsafe { bpf_redirect_neigh(cfg.wan_ifindex, core::ptr::null_mut(), 0, 0) } as i32,
        );
    }
    // SAFETY: plain helper call.
    Ok(unsafe { bpf_redirect(cfg.vpn_ifindex, u64::from(BPF_F_INGRESS)) } as i32)
}

/// The fast-path session of an inner destination, if any.
fn session_for(dst: u32) -> Option<(u32, SessionEntry)> {
    let idx = ADDR_SESSIONS.get(Key::new(32, dst)).copied()?;
    Some((idx, session(idx)?))
}

/// vpn0 egress for `ip` (already parsed). `Ok(None)`: not a fast-path client.
pub fn egress(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Option<i32>, DropReason> {
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(None);
    };
    if cfg.pptp_enabled == 0 {
        return Ok(None);
    }
    let Some((idx, entry)) = session_for(ip.dst) else {
        return Ok(None);
    };
    let inner_len = ctx.len() as usize;
    encap(ctx, idx, &entry, inner_len, false)?;
    count(Counter::FastTx);
    // SAFETY: plain helper call; no neighbour parameters (the FIB decides).
    Ok(Some(
        unsafe { bpf_redirect_neigh(cfg.wan_ifindex, core::ptr::null_mut(), 0, 0) } as i32,
    ))
}

/// Pushes IPv4+GRE+PPP for session `idx` in front of an inner IPv4 packet
/// of `inner_len` bytes. `has_eth`: the packet starts with an Ethernet
/// header (WAN ingress); else it starts at IPv4 (vpn0, an L3 device), and a
/// placeholder Ethernet header is added, as `bpf_redirect_neigh` pulls one.
fn encap(
    ctx: &TcContext,
    idx: u32,
    entry: &SessionEntry,
    inner_len: usize,
    has_eth: bool,
) -> Result<(), DropReason> {
    let Some(seqs) = GRE_SEQ.get_ptr_mut(idx) else {
        return Err(DropReason::FastPathFailed);
    };
    // SAFETY: a valid slot; seq_out is only ever taken with atomic fetch-add,
    // by this program and by the daemon (through its mmap of the array).
    let (seq, ack) = unsafe {
        let seq = fetch_add(&raw mut (*seqs).seq_out);
        (seq as u32, (*seqs).seq_in)
    };
    let flags = u64::from(BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE);
    ctx.adjust_room(ENCAP_LEN as i32, BPF_ADJ_ROOM_MAC, flags)
        .map_err(|_| DropReason::FastPathFailed)?;
    if !has_eth {
        // SAFETY: plain helper call on this program's skb.
        if unsafe { bpf_skb_change_head(ctx.skb.skb, ETH_LEN as u32, 0) } != 0 {
            return Err(DropReason::FastPathFailed);
        }
        ctx.store(12, &ETH_P_IP.to_be_bytes(), 0)
            .map_err(|_| DropReason::FastPathFailed)?;
    }
    let mut h = [0u8; ENCAP_LEN];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((ENCAP_LEN + inner_len) as u16).to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = IPPROTO_GRE;
    h[12..16].copy_from_slice(&entry.local_ip.to_ne_bytes());
    h[16..20].copy_from_slice(&entry.peer_ip.to_ne_bytes());
    let mut sum = 0u32;
    let mut i = 0;
    while i < 20 {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let gre_flags = GRE_F_KEY | GRE_F_SEQ | GRE_F_ACK | GRE_VERSION_PPTP;
    h[20..22].copy_from_slice(&gre_flags.to_be_bytes());
    h[22..24].copy_from_slice(&GRE_PROTO_PPP.to_be_bytes());
    h[24..26].copy_from_slice(&((inner_len + 4) as u16).to_be_bytes());
    h[26..28].copy_from_slice(&(entry.peer_id as u16).to_be_bytes());
    h[28..32].copy_from_slice(&seq.to_be_bytes());
    h[32..36].copy_from_slice(&ack.to_be_bytes());
    h[36..40].copy_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    ctx.store(ETH_LEN, &h, 0)
        .map_err(|_| DropReason::FastPathFailed)?;
    add_stats(idx, false, inner_len as u64);
    Ok(())
}
