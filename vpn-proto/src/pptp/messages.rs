//! PPTP control messages (RFC 2637 §2): the 12-byte header with the magic
//! cookie, and the messages a PAC (our role: the gateway) handles. Parsing
//! is total: a short or odd message is an error value, never a panic.
use crate::codec::Reader;

pub const MAGIC_COOKIE: u32 = 0x1a2b_3c4d;
pub const VERSION: u16 = 0x0100;
const HEADER: usize = 12;
const CONTROL_MESSAGE: u16 = 1;

pub const SCCRQ: u16 = 1;
pub const SCCRP: u16 = 2;
pub const STOP_CCRQ: u16 = 3;
pub const STOP_CCRP: u16 = 4;
pub const ECHO_RQ: u16 = 5;
pub const ECHO_RP: u16 = 6;
pub const OCRQ: u16 = 7;
pub const OCRP: u16 = 8;
pub const ICRQ: u16 = 9;
pub const CCRQ: u16 = 12;
pub const CDN: u16 = 13;
pub const WEN: u16 = 14;
pub const SLI: u16 = 15;

/// Result codes we send.
pub const RESULT_OK: u8 = 1;
pub const RESULT_GENERAL_ERROR: u8 = 2;
/// OCRP: "busy" (no room for another call).
pub const OCRP_BUSY: u8 = 4;
/// OCRP: "do not accept" (this connection has its call already).
pub const OCRP_DO_NOT_ACCEPT: u8 = 7;
/// CDN: "administrative shutdown".
pub const CDN_ADMIN: u8 = 3;
/// Longest message we accept (SCCRQ/SCCRP are 156, OCRQ 168).
pub const MAX_MESSAGE: usize = 256;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PptpError {
    #[error("truncated message")]
    Truncated,
    #[error("bad length {0}")]
    BadLength(usize),
    #[error("not a control message (type {0})")]
    NotControl(u16),
    #[error("wrong magic cookie {0:#010x}")]
    BadCookie(u32),
    #[error("{0} message is too short")]
    Short(&'static str),
}

/// A parsed control message (the fields we use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Sccrq {
        version: u16,
    },
    StopCcrq,
    StopCcrp,
    EchoRq {
        id: u32,
    },
    EchoRp {
        id: u32,
    },
    Ocrq {
        call_id: u16,
        serial: u16,
        window: u16,
    },
    Ccrq {
        call_id: u16,
    },
    Cdn {
        call_id: u16,
    },
    Sli {
        peer_call_id: u16,
    },
    Wen,
    /// A type we do not handle (incoming calls, or unknown).
    Other(u16),
}

/// A big-endian u16 at `at`; callers check the length first.
fn be16(b: &[u8], at: usize) -> u16 {
    Reader::new(b.get(at..).unwrap_or_default())
        .u16()
        .unwrap_or(0)
}

/// A big-endian u32 at `at`; callers check the length first.
fn be32(b: &[u8], at: usize) -> u32 {
    Reader::new(b.get(at..).unwrap_or_default())
        .u32()
        .unwrap_or(0)
}

/// Takes one whole message off the front of a TCP stream buffer.
pub fn take(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, PptpError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = be16(buf, 0) as usize;
    if !(HEADER..=MAX_MESSAGE).contains(&len) {
        return Err(PptpError::BadLength(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(buf.drain(..len).collect()))
}

/// One whole message (as `take` cuts it): its Length field must match.
pub fn parse(m: &[u8]) -> Result<Message, PptpError> {
    if m.len() < HEADER {
        return Err(PptpError::Truncated);
    }
    if usize::from(be16(m, 0)) != m.len() {
        return Err(PptpError::BadLength(usize::from(be16(m, 0))));
    }
    if be16(m, 2) != CONTROL_MESSAGE {
        return Err(PptpError::NotControl(be16(m, 2)));
    }
    if be32(m, 4) != MAGIC_COOKIE {
        return Err(PptpError::BadCookie(be32(m, 4)));
    }
    let kind = be16(m, 8);
    let body = &m[HEADER..];
    let need = |n: usize, what: &'static str| {
        if body.len() < n {
            Err(PptpError::Short(what))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        SCCRQ => {
            need(2, "SCCRQ")?;
            Message::Sccrq {
                version: be16(body, 0),
            }
        }
        STOP_CCRQ => Message::StopCcrq,
        STOP_CCRP => Message::StopCcrp,
        ECHO_RQ => {
            need(4, "Echo-Request")?;
            Message::EchoRq { id: be32(body, 0) }
        }
        ECHO_RP => {
            need(4, "Echo-Reply")?;
            Message::EchoRp { id: be32(body, 0) }
        }
        OCRQ => {
            need(24, "OCRQ")?;
            Message::Ocrq {
                call_id: be16(body, 0),
                serial: be16(body, 2),
                window: be16(body, 20),
            }
        }
        CCRQ => {
            need(2, "CCRQ")?;
            Message::Ccrq {
                call_id: be16(body, 0),
            }
        }
        CDN => {
            need(2, "CDN")?;
            Message::Cdn {
                call_id: be16(body, 0),
            }
        }
        SLI => {
            need(2, "SLI")?;
            Message::Sli {
                peer_call_id: be16(body, 0),
            }
        }
        WEN => Message::Wen,
        other => Message::Other(other),
    })
}

fn message(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + body.len());
    m.extend_from_slice(&((HEADER + body.len()) as u16).to_be_bytes());
    m.extend_from_slice(&CONTROL_MESSAGE.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(body);
    m
}

fn padded(s: &str, n: usize) -> Vec<u8> {
    let mut v = s.as_bytes()[..s.len().min(n)].to_vec();
    v.resize(n, 0);
    v
}

/// Start-Control-Connection-Reply.
pub fn sccrp(result: u8, host: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.push(result);
    b.push(0);
    b.extend_from_slice(&1u32.to_be_bytes()); // framing: async
    b.extend_from_slice(&1u32.to_be_bytes()); // bearer: analog
    b.extend_from_slice(&0u16.to_be_bytes()); // max channels (ignored by PNS)
    b.extend_from_slice(&1u16.to_be_bytes()); // firmware revision
    b.extend_from_slice(&padded(host, 64));
    b.extend_from_slice(&padded("vpn-ctl", 64));
    message(SCCRP, &b)
}

pub fn stop_ccrq(reason: u8) -> Vec<u8> {
    message(STOP_CCRQ, &[reason, 0, 0, 0])
}

pub fn stop_ccrp() -> Vec<u8> {
    message(STOP_CCRP, &[RESULT_OK, 0, 0, 0])
}

pub fn echo_rq(id: u32) -> Vec<u8> {
    message(ECHO_RQ, &id.to_be_bytes())
}

pub fn echo_rp(id: u32) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[RESULT_OK, 0, 0, 0]);
    message(ECHO_RP, &b)
}

/// Outgoing-Call-Reply: our call ID for the client's, and our receive window.
pub fn ocrp(call_id: u16, peer_call_id: u16, result: u8, window: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&call_id.to_be_bytes());
    b.extend_from_slice(&peer_call_id.to_be_bytes());
    b.push(result);
    b.push(0);
    b.extend_from_slice(&0u16.to_be_bytes()); // cause
    b.extend_from_slice(&100_000_000u32.to_be_bytes()); // connect speed
    b.extend_from_slice(&window.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes()); // processing delay
    b.extend_from_slice(&0u32.to_be_bytes()); // physical channel
    message(OCRP, &b)
}

/// Start-Control-Connection-Request (the client's side: test clients).
pub fn sccrq() -> Vec<u8> {
    let mut b = VERSION.to_be_bytes().to_vec();
    b.resize(156 - HEADER, 0);
    message(SCCRQ, &b)
}

/// Outgoing-Call-Request for the client's call `call_id`, with its receive
/// window (the client's side: test clients).
pub fn ocrq(call_id: u16, serial: u16, window: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&call_id.to_be_bytes());
    b.extend_from_slice(&serial.to_be_bytes());
    b.extend_from_slice(&300u32.to_be_bytes()); // minimum bps
    b.extend_from_slice(&100_000_000u32.to_be_bytes()); // maximum bps
    b.extend_from_slice(&3u32.to_be_bytes()); // bearer: any
    b.extend_from_slice(&3u32.to_be_bytes()); // framing: any
    b.extend_from_slice(&window.to_be_bytes());
    b.resize(168 - HEADER, 0);
    message(OCRQ, &b)
}

/// Call-Clear-Request for the client's call `call_id`.
pub fn ccrq(call_id: u16) -> Vec<u8> {
    let mut b = call_id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    message(CCRQ, &b)
}

/// Call-Disconnect-Notify for our call `call_id`.
pub fn cdn(call_id: u16, result: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&call_id.to_be_bytes());
    b.push(result);
    b.push(0);
    b.extend_from_slice(&[0u8; 4]);
    b.extend_from_slice(&[0u8; 128]);
    message(CDN, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `pptp_control` fuzz target: a message whose Length
    /// field disagrees with its size was parsed.
    #[test]
    fn a_length_field_that_disagrees_is_refused() {
        let mut m = sccrq();
        assert!(parse(&m).is_ok());
        m[0..2].copy_from_slice(&0xa331u16.to_be_bytes());
        assert!(matches!(parse(&m), Err(PptpError::BadLength(0xa331))));
        let whole = sccrq();
        assert!(parse(&whole[..whole.len() - 1]).is_err());
    }

    #[test]
    fn messages_round_trip_and_have_rfc_lengths() {
        assert_eq!(sccrp(RESULT_OK, "gw").len(), 156);
        assert_eq!(ocrp(1, 2, RESULT_OK, 64).len(), 32);
        assert_eq!(cdn(1, CDN_ADMIN).len(), 148);
        assert_eq!(echo_rp(7).len(), 20);
        assert_eq!(stop_ccrq(1).len(), 16);
        assert_eq!(parse(&sccrq()), Ok(Message::Sccrq { version: VERSION }));
        assert_eq!(parse(&echo_rq(9)), Ok(Message::EchoRq { id: 9 }));
        assert_eq!(parse(&cdn(5, 3)), Ok(Message::Cdn { call_id: 5 }));
        assert_eq!(ocrq(7, 1, 64).len(), 168);
        assert_eq!(
            parse(&ocrq(7, 1, 64)),
            Ok(Message::Ocrq {
                call_id: 7,
                serial: 1,
                window: 64
            })
        );
        assert_eq!(parse(&ccrq(7)), Ok(Message::Ccrq { call_id: 7 }));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let good = sccrq();
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[4] ^= 1;
        assert_eq!(
            parse(&bad),
            Err(PptpError::BadCookie(MAGIC_COOKIE ^ 0x0100_0000))
        );
        assert!(
            take(&mut vec![0, 3, 0, 0]).is_err(),
            "length below the header"
        );
        assert!(take(&mut vec![0xff, 0xff]).is_err(), "oversized length");
        let mut stream = [good.clone(), echo_rq(1)].concat();
        assert_eq!(take(&mut stream).unwrap(), Some(good));
        assert_eq!(
            parse(&take(&mut stream).unwrap().unwrap()),
            Ok(Message::EchoRq { id: 1 })
        );
        let mut other = message(99, &[]);
        assert_eq!(
            parse(&take(&mut other).unwrap().unwrap()),
            Ok(Message::Other(99))
        );
    }
}
