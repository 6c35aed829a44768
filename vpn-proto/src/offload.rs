//! What a TUN device with `IFF_VNET_HDR` hands userspace, turned into
//! packets fit for the wire. With TCP segmentation offload on, the kernel's
//! TCP stack writes one "super-packet" of up to 64 KiB per TUN read instead
//! of one per MSS (one pass through the stack, one read), and leaves its
//! checksum to us: the `virtio_net_hdr` in front says how to cut it
//! (`gso_size`) and where the partial checksum lies. This is what the Linux
//! kernel's `tcp_gso_segment` and `skb_checksum_help` do in software.
//! IPv4 TCP only: the tunnel carries IPv4, and only TSO4 is offered.

mod coalesce;
pub use coalesce::Coalescer;

/// Length of `struct virtio_net_hdr` (the TUN default, no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` is to be completed.
pub const VNET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values.
pub const VNET_HDR_GSO_NONE: u8 = 0;
pub const VNET_HDR_GSO_TCPV4: u8 = 1;
/// The ECN bit a `gso_type` may carry (the stack sets it only when offered).
pub const VNET_HDR_GSO_ECN: u8 = 0x80;

const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The header in front of every packet of a `IFF_VNET_HDR` TUN device
/// (little-endian fields: virtio's "legacy" layout, as the TUN driver uses
/// on little-endian hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn decode(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }
}

/// Why a packet from the TUN device could not be turned into wire packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Shorter than its headers say, or the checksum offsets lie outside it.
    Malformed,
    /// A segmentation type that was not offered (UDP, IPv6).
    Unsupported,
}

/// Calls `out` with each wire-ready IPv4 packet carried by `packet` (the
/// bytes after the `VnetHdr`): the packet itself with its checksum
/// completed, or its TCP segments. `scratch` holds one segment at a time.
pub fn split(
    hdr: &VnetHdr,
    packet: &mut [u8],
    scratch: &mut Vec<u8>,
    mut out: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    match hdr.gso_type & !VNET_HDR_GSO_ECN {
        VNET_HDR_GSO_NONE => {
            if hdr.flags & VNET_HDR_F_NEEDS_CSUM != 0 {
                complete_checksum(packet, hdr.csum_start.into(), hdr.csum_offset.into())?;
            }
            out(packet);
            Ok(())
        }
        VNET_HDR_GSO_TCPV4 => segment_tcp4(packet, hdr.gso_size.into(), scratch, out),
        _ => Err(OffloadError::Unsupported),
    }
}

/// Completes a partial checksum as `skb_checksum_help` does: the field
/// holds the pseudo-header's sum; the sum from `start` to the end,
/// complemented, goes into it (0 becomes 0xffff, which UDP needs).
fn complete_checksum(p: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let at = start + offset;
    if at + 2 > p.len() {
        return Err(OffloadError::Malformed);
    }
    let c = !fold(sum(0, &p[start..]));
    let c = if c == 0 { 0xffff } else { c };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Cuts an IPv4 TCP super-packet into segments of `mss` payload bytes, each
/// with its own IP length, ID and checksum, sequence number and TCP
/// checksum; FIN and PSH only on the last, CWR only on the first.
fn segment_tcp4(
    p: &[u8],
    mss: usize,
    scratch: &mut Vec<u8>,
    mut out: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Err(OffloadError::Malformed);
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p[9] != IPPROTO_TCP || p.len() < ihl + 20 {
        return Err(OffloadError::Malformed);
    }
    let hlen = ihl + usize::from(p[ihl + 12] >> 4) * 4;
    if hlen < ihl + 20 || p.len() < hlen || mss == 0 {
        return Err(OffloadError::Malformed);
    }
    let id = u16::from_be_bytes([p[4], p[5]]);
    let seq = u32::from_be_bytes([p[ihl + 4], p[ihl + 5], p[ihl + 6], p[ihl + 7]]);
    let flags = p[ihl + 13];
    let payload = &p[hlen..];
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        scratch.clear();
        scratch.extend_from_slice(&p[..hlen]);
        scratch.extend_from_slice(chunk);
        let s = &mut scratch[..];
        let total = (hlen + chunk.len()) as u16;
        s[2..4].copy_from_slice(&total.to_be_bytes());
        s[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        s[10..12].fill(0);
        let ip_sum = !fold(sum(0, &s[..ihl]));
        s[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let t = ihl;
        s[t + 4..t + 8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        s[t + 13] = f;
        s[t + 16..t + 18].fill(0);
        let tcp_len = (s.len() - t) as u32;
        let pseudo = sum(u64::from(IPPROTO_TCP) + u64::from(tcp_len), &s[12..20]);
        let tcp_sum = !fold(sum(pseudo, &s[t..]));
        s[t + 16..t + 18].copy_from_slice(&tcp_sum.to_be_bytes());
        out(s);
    }
    Ok(())
}

/// The ones' complement sum of `data` as big-endian 16-bit words, added to
/// `acc`, unfolded (8 bytes at a time: the carries wait in the upper bits).
/// The result may use all 64 bits: add further words through `acc`, never
/// with `+` afterwards.
fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_be_bytes(w.try_into().expect("8 bytes"));
        let (s, carry) = acc.overflowing_add(v);
        acc = s + u64::from(carry);
    }
    let mut rest = words.remainder().chunks(2);
    for c in &mut rest {
        let v = u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        let (s, carry) = acc.overflowing_add(v);
        acc = s + u64::from(carry);
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests;
