//! L2TPv2 data messages on the fast path (docs/decisions.md #28): the
//! header of an arriving data message (any of the L, S, O bits; S sends it
//! to the daemon, which keeps data sequencing), and the minimal header
//! pushed for a client (no L, S, O), inside UDP from our port to its port.
use aya_ebpf::{bindings::BPF_F_ADJ_ROOM_ENCAP_L4_UDP, programs::TcContext};
use vpn_common::{
    counters::DropReason,
    maps::{SessionEntry, TunnelKey, PROTO_L2TP},
    wire::{
        Ipv4Hdr, IPPROTO_UDP, L2TP_F_LENGTH, L2TP_F_OFFSET, L2TP_F_SEQUENCE, L2TP_F_TYPE,
        L2TP_VERSION, L2TP_VERSION_MASK, PPP_ADDR_CTRL, PPP_PROTO_IPV4,
    },
};

use crate::{
    bytes::PacketBytes,
    encap::{ipv4_header, make_room, ETH_LEN, IPV4_LEN},
};

/// Outer IPv4 (20) + UDP (8) + L2TP flags, tunnel, session (6) + PPP FF 03 00 21 (4).
pub const ENCAP_LEN: usize = IPV4_LEN + 8 + 6 + 4;

/// UDP's length (at `LEN_AT` of the header) less the inner packet's: UDP,
/// L2TP and PPP headers.
pub const LEN_BASE: usize = ENCAP_LEN - IPV4_LEN;
/// Where UDP's length lies in the header.
pub const LEN_AT: usize = IPV4_LEN + 4;

/// What the WAN ingress needs of an L2TP data message.
pub struct Arrived {
    pub key: TunnelKey,
    /// The client's UDP port (network order), checked against the session's.
    pub src_port: u16,
    /// Where the PPP frame starts.
    pub ppp: usize,
}

/// An L2TP data message at UDP offset `udp`: its session key and PPP
/// offset. `None`: not ours to shortcut (control, sequenced data,
/// anything too short to be a data message).
pub fn arrived<P: PacketBytes>(ctx: &P, ip: &Ipv4Hdr, udp: usize, port: u16) -> Option<Arrived> {
    if ip.proto != IPPROTO_UDP || port == 0 || ctx.be16(udp + 2) != Some(port) {
        return None;
    }
    // Anything short or odd is not a session's data: the daemon counts it.
    let src_port = ctx.read::<u16>(udp)?;
    let mut off = udp + 8;
    let flags = ctx.be16(off)?;
    if flags & L2TP_VERSION_MASK != L2TP_VERSION || flags & (L2TP_F_TYPE | L2TP_F_SEQUENCE) != 0 {
        return None;
    }
    off += 2;
    if flags & L2TP_F_LENGTH != 0 {
        off += 2;
    }
    let tunnel = ctx.be16(off)?;
    let session = ctx.be16(off + 2)?;
    off += 4;
    if flags & L2TP_F_OFFSET != 0 {
        off += 2 + usize::from(ctx.be16(off)?);
    }
    Some(Arrived {
        key: TunnelKey::new(
            ip.src,
            (u32::from(tunnel) << 16) | u32::from(session),
            PROTO_L2TP,
        ),
        src_port,
        ppp: off,
    })
}

/// Pushes IPv4+UDP+L2TP+PPP for `entry` in front of an inner IPv4 packet
/// of `inner_len` bytes (see `encap::make_room` for `has_eth`).
pub fn push(
    ctx: &TcContext,
    entry: &SessionEntry,
    inner_len: usize,
    has_eth: bool,
) -> Result<(), DropReason> {
    make_room(ctx, ENCAP_LEN, BPF_F_ADJ_ROOM_ENCAP_L4_UDP, has_eth)?;
    ctx.store(ETH_LEN, &header(entry, inner_len), 0)
        .map_err(|_| DropReason::FastPathFailed)
}

/// The IPv4+UDP+L2TP+PPP header for `entry` and an inner IPv4 packet of
/// `inner_len` bytes: no L, S, O bits, from our port to the client's.
#[inline(always)]
pub fn header(entry: &SessionEntry, inner_len: usize) -> [u8; ENCAP_LEN] {
    let mut h = [0u8; ENCAP_LEN];
    ipv4_header(
        &mut h,
        IPPROTO_UDP,
        entry.local_ip,
        entry.peer_ip,
        ENCAP_LEN + inner_len,
    );
    let u = IPV4_LEN;
    h[u..u + 2].copy_from_slice(&entry.local_port.to_ne_bytes());
    h[u + 2..u + 4].copy_from_slice(&entry.peer_port.to_ne_bytes());
    h[LEN_AT..LEN_AT + 2].copy_from_slice(&((LEN_BASE + inner_len) as u16).to_be_bytes());
    // UDP checksum 0: none (IPv4 allows it; L2TP clients accept it).
    let l = u + 8;
    h[l..l + 2].copy_from_slice(&L2TP_VERSION.to_be_bytes());
    h[l + 2..l + 4].copy_from_slice(&((entry.peer_id >> 16) as u16).to_be_bytes());
    h[l + 4..l + 6].copy_from_slice(&(entry.peer_id as u16).to_be_bytes());
    h[l + 6..l + 8].copy_from_slice(&PPP_ADDR_CTRL.to_be_bytes());
    h[l + 8..l + 10].copy_from_slice(&PPP_PROTO_IPV4.to_be_bytes());
    h
}
