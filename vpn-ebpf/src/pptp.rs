//! PPTP's enhanced GRE on the fast path (docs/decisions.md #27): the
//! header of an arriving GRE packet (sequence number recorded in the
//! shared sequence space), and the header pushed for a client, numbered
//! from that space.
use aya_ebpf::{bindings::BPF_F_ADJ_ROOM_ENCAP_L4_GRE, programs::TcContext};
use vpn_common::{
    counters::DropReason,
    maps::{SessionEntry, TunnelKey, PROTO_PPTP},
    wire::{
        Ipv4Hdr, GRE_F_ACK, GRE_F_KEY, GRE_F_SEQ, GRE_PROTO_PPP, GRE_VERSION_MASK,
        GRE_VERSION_PPTP, IPPROTO_GRE, PPP_ADDR_CTRL, PPP_PROTO_IPV4,
    },
};

use crate::{
    bytes::PacketBytes,
    encap::{ipv4_header, make_room, ETH_LEN, IPV4_LEN},
    maps::GRE_SEQ,
};

/// Outer IPv4 (20) + GRE with key, sequence and ack (16) + PPP FF 03 00 21 (4).
pub const ENCAP_LEN: usize = IPV4_LEN + 16 + 4;

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

/// What the WAN ingress needs of a PPTP GRE packet.
pub struct Arrived {
    pub key: TunnelKey,
    /// The sequence number, when `has_seq` (no `Option`: LLVM leaves the
    /// payload of a `None` undefined, and the verifier refuses reading it).
    pub seq: u32,
    pub has_seq: bool,
    /// An acknowledgement without payload: the daemon's.
    pub ack_only: bool,
    /// Where the PPP frame starts.
    pub ppp: usize,
}

/// A GRE packet at offset `g`: its call key, sequence number and PPP
/// offset. `None`: not PPTP's GRE.
pub fn arrived<P: PacketBytes>(ctx: &P, ip: &Ipv4Hdr, g: usize, enabled: bool) -> Option<Arrived> {
    if !enabled || ip.proto != IPPROTO_GRE {
        return None;
    }
    // One read of the fixed 8 bytes: four reads left LLVM free to keep
    // their bounds checks as flags in a packet pointer's register, which
    // the verifier refuses.
    let [flags, proto, len, call_id] = ctx.read::<[u16; 4]>(g)?.map(u16::from_be);
    if flags & GRE_VERSION_MASK != GRE_VERSION_PPTP
        || flags & GRE_F_KEY == 0
        || proto != GRE_PROTO_PPP
    {
        return None;
    }
    let mut off = g + 8;
    let has_seq = flags & GRE_F_SEQ != 0;
    let mut seq = 0;
    if has_seq {
        seq = u32::from_be(ctx.read::<u32>(off)?); // short: the daemon counts it
        off += 4;
    }
    if flags & GRE_F_ACK != 0 {
        off += 4;
    }
    Some(Arrived {
        // Not `TunnelKey::new`: with it, LLVM gives this function code the
        // verifier refuses (a bitwise AND on a packet pointer's register).
        key: TunnelKey {
            peer_ip: ip.src,
            local_id: u32::from(call_id),
            proto: PROTO_PPTP,
            _pad: [0; 3],
        },
        seq,
        has_seq,
        ack_only: len == 0,
        ppp: off,
    })
}

/// Records the highest sequence number received, for acknowledgements.
pub fn record_seq(idx: u32, seq: u32) {
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
}

/// Pushes IPv4+GRE+PPP for session `idx` in front of an inner IPv4 packet
/// of `inner_len` bytes (see `encap::make_room` for `has_eth`).
pub fn push(
    ctx: &TcContext,
    idx: u32,
    entry: &SessionEntry,
    inner_len: usize,
    has_eth: bool,
) -> Result<(), DropReason> {
    let h = header(idx, entry, inner_len)?;
    make_room(ctx, ENCAP_LEN, BPF_F_ADJ_ROOM_ENCAP_L4_GRE, has_eth)?;
    ctx.store(ETH_LEN, &h, 0)
        .map_err(|_| DropReason::FastPathFailed)
}

/// The IPv4+GRE+PPP header for session `idx` and an inner IPv4 packet of
/// `inner_len` bytes, numbered from the shared sequence space.
#[inline(always)]
pub fn header(
    idx: u32,
    entry: &SessionEntry,
    inner_len: usize,
) -> Result<[u8; ENCAP_LEN], DropReason> {
    let (seq, ack) = next_seq(idx)?;
    Ok(header_with(entry, inner_len, seq, ack))
}

/// Session `idx`'s next sequence number to send, taken, and the last one
/// received (the acknowledgement).
#[inline(always)]
pub fn next_seq(idx: u32) -> Result<(u32, u32), DropReason> {
    let Some(seqs) = GRE_SEQ.get_ptr_mut(idx) else {
        return Err(DropReason::FastPathFailed);
    };
    // SAFETY: a valid slot; seq_out is only ever taken with atomic fetch-add,
    // by this program and by the daemon (through its mmap of the array).
    Ok(unsafe {
        let seq = fetch_add(&raw mut (*seqs).seq_out);
        (seq as u32, (*seqs).seq_in)
    })
}

/// The IPv4+GRE+PPP header for `entry`, an inner IPv4 packet of
/// `inner_len` bytes, sequence number `seq` and acknowledgement `ack`.
#[inline(always)]
pub fn header_with(entry: &SessionEntry, inner_len: usize, seq: u32, ack: u32) -> [u8; ENCAP_LEN] {
    let mut h = [0u8; ENCAP_LEN];
    ipv4_header(
        &mut h,
        IPPROTO_GRE,
        entry.local_ip,
        entry.peer_ip,
        ENCAP_LEN + inner_len,
    );
    let g = IPV4_LEN;
    let gre_flags = GRE_F_KEY | GRE_F_SEQ | GRE_F_ACK | GRE_VERSION_PPTP;
    h[g..g + 2].copy_from_slice(&gre_flags.to_be_bytes());
    h[g + 2..g + 4].copy_from_slice(&GRE_PROTO_PPP.to_be_bytes());
    h[LEN_AT..LEN_AT + 2].copy_from_slice(&((inner_len + LEN_BASE) as u16).to_be_bytes());
    h[g + 6..g + 8].copy_from_slice(&(entry.peer_id as u16).to_be_bytes());
    h[SEQ_AT..SEQ_AT + 4].copy_from_slice(&seq.to_be_bytes());
    h[ACK_AT..ACK_AT + 4].copy_from_slice(&ack.to_be_bytes());
    h[g + 16..g + 18].copy_from_slice(&PPP_ADDR_CTRL.to_be_bytes());
    h[g + 18..g + 20].copy_from_slice(&PPP_PROTO_IPV4.to_be_bytes());
    h
}

/// GRE's payload length (at `LEN_AT` of the header) less the inner
/// packet's: PPP's address, control and protocol.
pub const LEN_BASE: usize = 4;
/// Where GRE's payload length, sequence number and acknowledgement lie
/// in the header.
pub const LEN_AT: usize = IPV4_LEN + 4;
pub const SEQ_AT: usize = IPV4_LEN + 8;
pub const ACK_AT: usize = IPV4_LEN + 12;
