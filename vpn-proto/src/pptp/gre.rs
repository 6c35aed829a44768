//! PPTP's enhanced GRE header (RFC 2637 §4.1): key = the receiver's call
//! ID, optional sequence and acknowledgement numbers. Constants come from
//! vpn-common, which the XDP/TC programs share.
use crate::codec::{Reader, Writer as _};
use vpn_common::wire::{
    GRE_F_ACK, GRE_F_KEY, GRE_F_SEQ, GRE_PROTO_PPP, GRE_VERSION_MASK, GRE_VERSION_PPTP,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreHeader {
    pub call_id: u16,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub payload_len: u16,
}

impl GreHeader {
    pub fn len(&self) -> usize {
        8 + 4 * usize::from(self.seq.is_some()) + 4 * usize::from(self.ack.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.payload_len == 0
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = GRE_F_KEY | GRE_VERSION_PPTP;
        if self.seq.is_some() {
            flags |= GRE_F_SEQ;
        }
        if self.ack.is_some() {
            flags |= GRE_F_ACK;
        }
        out.put_u16(flags);
        out.put_u16(GRE_PROTO_PPP);
        out.put_u16(self.payload_len);
        out.put_u16(self.call_id);
        if let Some(s) = self.seq {
            out.put_u32(s);
        }
        if let Some(a) = self.ack {
            out.put_u32(a);
        }
    }

    /// Parses a GRE packet (starting at the GRE header); the payload follows
    /// at `len()` and is `payload_len` long (checked against the packet).
    pub fn decode(p: &[u8]) -> Option<GreHeader> {
        let mut r = Reader::new(p);
        let flags = r.u16()?;
        if flags & GRE_VERSION_MASK != GRE_VERSION_PPTP
            || flags & GRE_F_KEY == 0
            || r.u16()? != GRE_PROTO_PPP
        {
            return None;
        }
        let payload_len = r.u16()?;
        let call_id = r.u16()?;
        let seq = if flags & GRE_F_SEQ != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let ack = if flags & GRE_F_ACK != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        (r.remaining() >= usize::from(payload_len)).then_some(GreHeader {
            call_id,
            seq,
            ack,
            payload_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_seq_ack() {
        for (seq, ack) in [
            (Some(7), Some(3)),
            (Some(0), None),
            (None, Some(9)),
            (None, None),
        ] {
            let h = GreHeader {
                call_id: 0x1234,
                seq,
                ack,
                payload_len: 3,
            };
            let mut p = Vec::new();
            h.encode(&mut p);
            p.extend_from_slice(b"ppp");
            crate::fuzz_seed::save("gre", &p);
            assert_eq!(GreHeader::decode(&p), Some(h));
            for cut in 0..p.len() {
                assert_eq!(GreHeader::decode(&p[..cut]), None, "cut {cut}");
            }
        }
        // Plain GRE (version 0) is not PPTP.
        assert_eq!(GreHeader::decode(&[0, 0, 0x88, 0x0b, 0, 0, 0, 0]), None);
    }
}
