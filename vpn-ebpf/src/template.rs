//! The first bytes of a forwarded frame as a flow caches them
//! (`FlowSlot::hdr`, decisions #61): built on the flow's first packet from
//! the same header builders as every packet's (`l2tp::header`,
//! `pptp::header_with`) for an empty inner packet, then written for each
//! packet with a few wide stores and patched with its lengths.
use aya_ebpf::programs::XdpContext;
use vpn_common::{counters::DropReason, maps::FLOW_HDR_WORDS, wire::ETH_P_IPV4};

use crate::{
    encap::{fold, ETH_LEN, IPV4_LEN},
    l2tp,
    packet::{bytes_mut, store},
    pptp,
};

/// A frame's first bytes, as little-endian words in memory order.
pub type Hdr = [u64; FLOW_HDR_WORDS];

const _: () = assert!(cfg!(target_endian = "little"));

/// The Ethernet header for next hop `l2` (destination then source MAC,
/// as words), followed by `tunnel` (a tunnel's headers, or nothing).
#[inline(always)]
pub fn build<const N: usize>(l2: [u32; 3], tunnel: &[u8; N]) -> Hdr {
    let mut b = [0u8; FLOW_HDR_WORDS * 8];
    let [x, y, z] = l2.map(u32::to_ne_bytes);
    b[0..4].copy_from_slice(&x);
    b[4..8].copy_from_slice(&y);
    b[8..12].copy_from_slice(&z);
    b[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    b[ETH_LEN..ETH_LEN + N].copy_from_slice(tunnel);
    let mut w = [0u64; FLOW_HDR_WORDS];
    for (i, w) in w.iter_mut().enumerate() {
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *w = u64::from_ne_bytes(c);
    }
    w
}

/// The IPv4 header checksum of a tunnel header built by `build` (host order).
#[inline(always)]
pub fn checksum<const N: usize>(tunnel: &[u8; N]) -> u16 {
    u16::from_be_bytes([tunnel[10], tunnel[11]])
}

/// Writes the first `N` bytes of `hdr` at the frame's start.
///
/// # Safety
/// `p` is the frame's start with `N` writable bytes (`bytes_mut`).
#[inline(always)]
unsafe fn copy<const N: usize, const W: usize>(p: *mut u8, hdr: &[u64; W]) {
    let mut i = 0;
    while i + 8 <= N {
        // SAFETY: as the caller promises.
        unsafe { store::<8>(p.add(i), hdr[i / 8]) };
        i += 8;
    }
    let tail = if i < N { hdr[i / 8] } else { 0 };
    if i + 4 <= N {
        // SAFETY: as the caller promises.
        unsafe { store::<4>(p.add(i), tail) };
    }
    if (N - i) % 4 == 2 {
        let at = i + (N - i) / 4 * 4;
        let v = if N - i >= 4 { tail >> 32 } else { tail };
        // SAFETY: as the caller promises.
        unsafe { store::<2>(p.add(at), v) };
    }
}

/// The first two words of a template: its Ethernet header.
pub type Eth = [u64; 2];

/// `hdr`'s Ethernet header.
#[inline(always)]
pub fn eth(hdr: &Hdr) -> Eth {
    [hdr[0], hdr[1]]
}

/// The Ethernet header `eth`, at the frame's start.
#[inline(always)]
pub fn write_eth(ctx: &XdpContext, eth: &Eth) -> Result<(), DropReason> {
    let p = bytes_mut::<ETH_LEN>(ctx.data(), ctx.data_end(), 0)
        .map_err(|_| DropReason::FastPathFailed)?;
    // SAFETY: `bytes_mut` proved the bytes lie inside the frame.
    unsafe { copy::<ETH_LEN, 2>(p, eth) };
    Ok(())
}

/// An L2TP packet's headers, at the frame's start, from its flow's
/// template (see `write_encap`).
#[inline(always)]
pub fn write_l2tp(
    ctx: &XdpContext,
    hdr: &Hdr,
    csum0: u16,
    inner_len: usize,
) -> Result<(), DropReason> {
    write_encap::<{ ETH_LEN + l2tp::ENCAP_LEN }>(
        ctx,
        hdr,
        csum0,
        inner_len,
        l2tp::LEN_AT,
        l2tp::LEN_BASE,
    )
    .map(|_| ())
}

/// A PPTP packet's headers, at the frame's start, from its flow's
/// template (see `write_encap`), with sequence number `seq` and
/// acknowledgement `ack`.
#[inline(always)]
pub fn write_pptp(
    ctx: &XdpContext,
    hdr: &Hdr,
    csum0: u16,
    inner_len: usize,
    seq: u32,
    ack: u32,
) -> Result<(), DropReason> {
    let p = write_encap::<{ ETH_LEN + pptp::ENCAP_LEN }>(
        ctx,
        hdr,
        csum0,
        inner_len,
        pptp::LEN_AT,
        pptp::LEN_BASE,
    )?;
    // SAFETY: inside the GRE header `write_encap` checked and wrote.
    unsafe {
        store::<4>(p.add(ETH_LEN + pptp::SEQ_AT), u64::from(seq.to_be()));
        store::<4>(p.add(ETH_LEN + pptp::ACK_AT), u64::from(ack.to_be()));
    }
    Ok(())
}

/// The template `hdr` of `N` bytes (Ethernet and a tunnel header of
/// `N - ETH_LEN`), at the frame's start, for an inner packet of
/// `inner_len` bytes: the outer IPv4 length and checksum (`csum0` for an
/// empty packet, updated as RFC 1624 does), and the tunnel's length at
/// `len_at` (`len_base` plus the inner packet's). Returns the frame's start.
#[inline(always)]
fn write_encap<const N: usize>(
    ctx: &XdpContext,
    hdr: &Hdr,
    csum0: u16,
    inner_len: usize,
    len_at: usize,
    len_base: usize,
) -> Result<*mut u8, DropReason> {
    let p =
        bytes_mut::<N>(ctx.data(), ctx.data_end(), 0).map_err(|_| DropReason::FastPathFailed)?;
    let total = (N - ETH_LEN + inner_len) as u16;
    let csum = !fold(u32::from(!csum0) + inner_len as u32);
    let len = (len_base + inner_len) as u16;
    // SAFETY: `bytes_mut` proved `[p, p + N)` lies inside the frame, and
    // the patched fields lie inside the IPv4 and tunnel headers.
    unsafe {
        copy::<N, FLOW_HDR_WORDS>(p, hdr);
        store::<2>(p.add(ETH_LEN + 2), u64::from(total.to_be()));
        store::<2>(p.add(ETH_LEN + 10), u64::from(csum.to_be()));
        store::<2>(p.add(ETH_LEN + len_at), u64::from(len.to_be()));
    }
    Ok(p)
}

const _: () = assert!(IPV4_LEN == 20);
