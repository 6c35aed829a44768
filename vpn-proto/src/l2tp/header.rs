//! The L2TPv2 header (RFC 2661 §3.1), control and data, every combination
//! of the L, S and O bits.
use super::consts::*;
use crate::codec::{Reader, Writer as _};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub control: bool,
    pub tunnel_id: u16,
    pub session_id: u16,
    /// (Ns, Nr) when the S bit is set.
    pub seq: Option<(u16, u16)>,
    /// Offset of the payload from the start of the datagram.
    pub payload_at: usize,
    /// The message's end (the Length field when present, else the datagram's).
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    Truncated,
    /// Not version 2 (L2F, L2TPv3), or a control message without L and S.
    Unsupported,
    /// The Length field or the offset points past the datagram.
    BadLength,
}

impl Header {
    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        let mut r = Reader::new(b);
        let flags = r.u16().ok_or(HeaderError::Truncated)?;
        if flags & VERSION_MASK != VERSION {
            return Err(HeaderError::Unsupported);
        }
        let control = flags & F_TYPE != 0;
        if control && flags & (F_LENGTH | F_SEQUENCE) != F_LENGTH | F_SEQUENCE {
            return Err(HeaderError::Unsupported);
        }
        let mut end = b.len();
        if flags & F_LENGTH != 0 {
            let len = usize::from(r.u16().ok_or(HeaderError::Truncated)?);
            if len > b.len() || len < 6 {
                return Err(HeaderError::BadLength);
            }
            end = len;
        }
        let tunnel_id = r.u16().ok_or(HeaderError::Truncated)?;
        let session_id = r.u16().ok_or(HeaderError::Truncated)?;
        let seq = if flags & F_SEQUENCE != 0 {
            let ns = r.u16().ok_or(HeaderError::Truncated)?;
            Some((ns, r.u16().ok_or(HeaderError::Truncated)?))
        } else {
            None
        };
        if flags & F_OFFSET != 0 && !control {
            let pad = r.u16().ok_or(HeaderError::Truncated)?;
            let skipped = r.skip(usize::from(pad));
            if skipped.is_none() || r.offset() > end {
                return Err(if flags & F_LENGTH != 0 {
                    HeaderError::BadLength
                } else {
                    HeaderError::Truncated
                });
            }
        }
        if r.offset() > end {
            return Err(HeaderError::BadLength);
        }
        Ok(Header {
            control,
            tunnel_id,
            session_id,
            seq,
            payload_at: r.offset(),
            end,
        })
    }

    /// A control header (T, L, S) for a message of `body_len` bytes.
    pub fn encode_control(
        out: &mut Vec<u8>,
        tunnel: u16,
        session: u16,
        ns: u16,
        nr: u16,
        body_len: usize,
    ) {
        out.put_u16(F_TYPE | F_LENGTH | F_SEQUENCE | VERSION);
        out.put_u16((12 + body_len) as u16);
        for v in [tunnel, session, ns, nr] {
            out.put_u16(v);
        }
    }

    /// A minimal data header (no L, no O; S with `seq`), as clients accept.
    pub fn encode_data(out: &mut Vec<u8>, tunnel: u16, session: u16, seq: Option<(u16, u16)>) {
        out.put_u16(VERSION | if seq.is_some() { F_SEQUENCE } else { 0 });
        out.put_u16(tunnel);
        out.put_u16(session);
        if let Some((ns, nr)) = seq {
            out.put_u16(ns);
            out.put_u16(nr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_headers_with_every_bit_combination() {
        // T=0 with L, S, O (offset 2 with padding), P.
        let full = [
            0x4b, 0x02, 0, 18, 0, 7, 0, 9, 0, 1, 0, 2, 0, 2, 0xaa, 0xbb, 0xff, 0x03,
        ];
        let h = Header::decode(&full).unwrap();
        assert!(!h.control);
        assert_eq!((h.tunnel_id, h.session_id, h.seq), (7, 9, Some((1, 2))));
        assert_eq!((h.payload_at, h.end), (16, 18));
        let bare = [0x00, 0x02, 0, 7, 0, 9, 0xff, 0x03];
        let h = Header::decode(&bare).unwrap();
        assert_eq!(
            (h.tunnel_id, h.session_id, h.seq, h.payload_at),
            (7, 9, None, 6)
        );
        // O with offset size 0 (SoftEther's data).
        let o = [0x02, 0x02, 0, 7, 0, 9, 0, 0, 0xff];
        assert_eq!(Header::decode(&o).unwrap().payload_at, 8);
        let mut enc = Vec::new();
        Header::encode_data(&mut enc, 7, 9, Some((1, 2)));
        let h = Header::decode(&enc).unwrap();
        assert_eq!(
            (h.tunnel_id, h.session_id, h.seq, h.payload_at),
            (7, 9, Some((1, 2)), 10)
        );
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        let good = {
            let mut v = Vec::new();
            Header::encode_control(&mut v, 1, 0, 0, 0, 0);
            v
        };
        assert!(Header::decode(&good).unwrap().control);
        for n in 0..good.len() {
            assert!(Header::decode(&good[..n]).is_err(), "prefix {n}");
        }
        // Version 3, control without S, a length past the end, an offset past the end.
        assert_eq!(
            Header::decode(&[0xc8, 0x03, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::Unsupported)
        );
        assert_eq!(
            Header::decode(&[0xc0, 0x02, 0, 8, 0, 0, 0, 0]),
            Err(HeaderError::Unsupported)
        );
        assert_eq!(
            Header::decode(&[0xc8, 0x02, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::BadLength)
        );
        assert_eq!(
            Header::decode(&[0x02, 0x02, 0, 7, 0, 9, 0, 50, 1]),
            Err(HeaderError::Truncated)
        );
    }
}
