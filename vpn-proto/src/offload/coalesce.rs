//! The other direction of [`super`]: consecutive segments of a TCP flow,
//! decrypted in one batch, written to the TUN device as one GSO packet
//! (what the kernel's GRO does for a NIC). The stack then routes, filters
//! and forwards one packet instead of dozens, and splits it only where it
//! must (or never, over a veth or to a local socket).
//!
//! A run only grows by a segment that continues it exactly: same addresses,
//! ports, IP and TCP header fields but the sequence number (which must
//! follow), the same payload size (a shorter one ends the run), nothing but
//! ACK and PSH set (PSH ends the run), a valid checksum (the merged packet
//! is handed over as checked). Anything else is written as it came.

use super::{fold, sum, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_TCPV4, VNET_HDR_LEN};

/// Runs kept open at once (distinct flows interleaved in one batch).
const RUNS: usize = 8;
/// Segments per run (the kernel's own GRO stops at 64 too).
const MAX_SEGMENTS: usize = 64;
/// Largest merged IP packet (its total length is 16 bits).
const MAX_IP_LEN: usize = 65_535;

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// Where a flow's run stands.
struct Run {
    /// The vnet header's room, then the first segment's headers, then the
    /// payloads of every segment so far.
    buf: Vec<u8>,
    hdr_len: usize,
    gso_size: usize,
    segments: usize,
    next_seq: u32,
    next_id: u16,
    /// A shorter or PSH segment was added: nothing may follow.
    closed: bool,
}

/// Coalesces TCP segments into GSO packets ready for a TUN write (each
/// output starts with its `virtio_net_hdr`).
pub struct Coalescer {
    runs: Vec<Run>,
    /// The runs in use, in order of opening.
    open: usize,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

/// A segment fit to join or open a run: its header length and payload.
struct Segment {
    hdr_len: usize,
    payload: usize,
    seq: u32,
    id: u16,
    flags: u8,
}

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer {
            runs: (0..RUNS)
                .map(|_| Run {
                    buf: Vec::with_capacity(VNET_HDR_LEN + MAX_IP_LEN),
                    hdr_len: 0,
                    gso_size: 0,
                    segments: 0,
                    next_seq: 0,
                    next_id: 0,
                    closed: false,
                })
                .collect(),
            open: 0,
        }
    }

    /// Takes one complete IPv4 packet; calls `write` with what is ready to
    /// go to the TUN device (now or for an earlier run it ends).
    pub fn push(&mut self, ip: &[u8], write: &mut impl FnMut(&[u8])) {
        let Some(seg) = segment(ip) else {
            // Not coalescible: after its flow's run, if it has one.
            if let Some(i) = self.find(ip) {
                self.close(i, write);
            }
            return write_alone(ip, write);
        };
        if let Some(i) = self.find(ip) {
            if self.joins(i, ip, &seg) {
                return self.append(i, ip, &seg);
            }
            self.close(i, write);
        }
        if self.open == RUNS {
            self.close(0, write);
        }
        self.start(ip, &seg);
    }

    /// Writes every open run.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8])) {
        while self.open > 0 {
            self.close(0, write);
        }
    }

    /// The open run of `ip`'s flow (addresses and ports), if any.
    fn find(&self, ip: &[u8]) -> Option<usize> {
        if ip.len() < 24 || ip[0] != 0x45 || ip[9] != 6 {
            return None;
        }
        self.runs[..self.open]
            .iter()
            .position(|r| r.buf[VNET_HDR_LEN + 12..VNET_HDR_LEN + 24] == ip[12..24])
    }

    fn joins(&self, i: usize, ip: &[u8], seg: &Segment) -> bool {
        let r = &self.runs[i];
        let first = &r.buf[VNET_HDR_LEN..VNET_HDR_LEN + r.hdr_len];
        !r.closed
            && r.segments < MAX_SEGMENTS
            && seg.hdr_len == r.hdr_len
            && seg.payload <= r.gso_size
            && seg.seq == r.next_seq
            && r.buf.len() - VNET_HDR_LEN + seg.payload <= MAX_IP_LEN
            // IP: TOS, DF, TTL equal; the ID follows unless DF makes it moot.
            && ip[1] == first[1]
            && ip[6..9] == first[6..9]
            && (ip[6] & 0x40 != 0 || seg.id == r.next_id)
            // TCP: ack, offset, flags but PSH, window, options equal.
            && ip[28..33] == first[28..33]
            && seg.flags & !TCP_PSH == first[33] & !TCP_PSH
            && ip[34..36] == first[34..36]
            && ip[40..seg.hdr_len] == first[40..seg.hdr_len]
    }

    fn append(&mut self, i: usize, ip: &[u8], seg: &Segment) {
        let r = &mut self.runs[i];
        r.buf
            .extend_from_slice(&ip[seg.hdr_len..seg.hdr_len + seg.payload]);
        r.segments += 1;
        r.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        r.next_id = seg.id.wrapping_add(1);
        if seg.flags & TCP_PSH != 0 {
            r.buf[VNET_HDR_LEN + 33] |= TCP_PSH;
            r.closed = true;
        }
        r.closed |= seg.payload < r.gso_size;
    }

    fn start(&mut self, ip: &[u8], seg: &Segment) {
        let r = &mut self.runs[self.open];
        r.buf.clear();
        r.buf.extend_from_slice(&[0; VNET_HDR_LEN]);
        r.buf.extend_from_slice(&ip[..seg.hdr_len + seg.payload]);
        r.hdr_len = seg.hdr_len;
        r.gso_size = seg.payload;
        r.segments = 1;
        r.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        r.next_id = seg.id.wrapping_add(1);
        r.closed = seg.flags & TCP_PSH != 0;
        self.open += 1;
    }

    /// Writes run `i` and removes it from the open ones.
    fn close(&mut self, i: usize, write: &mut impl FnMut(&[u8])) {
        let r = &mut self.runs[i];
        if r.segments > 1 {
            finish_gso(r);
        }
        write(&r.buf);
        self.runs[i..self.open].rotate_left(1);
        self.open -= 1;
    }
}

/// A packet that may open or join a run: IPv4 without options or
/// fragmentation, TCP with data, only ACK (and PSH) set, its checksum valid.
fn segment(ip: &[u8]) -> Option<Segment> {
    if ip.len() < 40 || ip[0] != 0x45 || ip[9] != 6 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let more_or_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    let hdr_len = 20 + usize::from(ip[32] >> 4) * 4;
    let flags = ip[33];
    if total != ip.len() || more_or_offset != 0 || hdr_len < 40 || hdr_len >= total {
        return None;
    }
    if flags & !TCP_PSH != TCP_ACK {
        return None;
    }
    let pseudo = sum(6 + (total - 20) as u64, &ip[12..20]);
    if fold(sum(pseudo, &ip[20..])) != 0xffff {
        return None;
    }
    Some(Segment {
        hdr_len,
        payload: total - hdr_len,
        seq: u32::from_be_bytes([ip[24], ip[25], ip[26], ip[27]]),
        id: u16::from_be_bytes([ip[4], ip[5]]),
        flags,
    })
}

fn write_alone(ip: &[u8], write: &mut impl FnMut(&[u8])) {
    let mut buf = [0u8; VNET_HDR_LEN + 1500];
    if ip.len() <= 1500 {
        buf[VNET_HDR_LEN..VNET_HDR_LEN + ip.len()].copy_from_slice(ip);
        write(&buf[..VNET_HDR_LEN + ip.len()]);
    } else {
        let mut v = vec![0u8; VNET_HDR_LEN];
        v.extend_from_slice(ip);
        write(&v);
    }
}

/// Turns a run of several segments into one GSO packet: the header says how
/// to cut it, the IP length and checksum cover the whole, and the TCP
/// checksum field holds the pseudo-header's sum for the stack to finish.
fn finish_gso(r: &mut Run) {
    let ip_len = r.buf.len() - VNET_HDR_LEN;
    let h = &mut r.buf[..];
    h[0] = VNET_HDR_F_NEEDS_CSUM;
    h[1] = VNET_HDR_GSO_TCPV4;
    h[2..4].copy_from_slice(&(r.hdr_len as u16).to_le_bytes());
    h[4..6].copy_from_slice(&(r.gso_size as u16).to_le_bytes());
    h[6..8].copy_from_slice(&20u16.to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    let ip = &mut h[VNET_HDR_LEN..];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[10..12].fill(0);
    let c = !fold(sum(0, &ip[..20]));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let pseudo = fold(sum(6 + (ip_len - 20) as u64, &ip[12..20]));
    ip[36..38].copy_from_slice(&pseudo.to_be_bytes());
}

#[cfg(test)]
mod tests;
