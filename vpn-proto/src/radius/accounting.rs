//! Accounting-Requests (RFC 2866): Start, Interim-Update and Stop of a
//! session with its counters (64-bit, split into octets and gigawords per
//! RFC 2869 §5.1), and Accounting-On/Off for the whole NAS.
use std::net::Ipv4Addr;

use super::{client::Request, consts::*, login::SessionInfo, packet::Packet};

/// A session's usage so far. "Input" is what the client sent (RFC 2866
/// §5.3: from the port), "output" what it was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub session_time: u32,
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
}

/// One session's record. `status`: ACCT_START, ACCT_INTERIM or ACCT_STOP;
/// `cause`: Acct-Terminate-Cause (Stop only).
pub fn session_request(
    info: &SessionInfo,
    status: u32,
    framed_ip: Option<Ipv4Addr>,
    class: &[Vec<u8>],
    usage: Option<&Usage>,
    cause: Option<u32>,
    event_time: u32,
) -> Request {
    let mut p = Packet::new(ACCOUNTING_REQUEST, 0);
    p.add_u32(ACCT_STATUS_TYPE, status);
    info.add_to(&mut p);
    p.add_u32(ACCT_AUTHENTIC, ACCT_AUTHENTIC_RADIUS)
        .add_u32(ACCT_DELAY_TIME, 0)
        .add_u32(EVENT_TIMESTAMP, event_time);
    if let Some(ip) = framed_ip {
        p.add_ip(FRAMED_IP_ADDRESS, ip);
    }
    for c in class {
        p.add(CLASS, c);
    }
    if let Some(u) = usage {
        let low = |v: u64| v as u32;
        let high = |v: u64| (v >> 32) as u32;
        p.add_u32(ACCT_SESSION_TIME, u.session_time)
            .add_u32(ACCT_INPUT_OCTETS, low(u.input_octets))
            .add_u32(ACCT_INPUT_GIGAWORDS, high(u.input_octets))
            .add_u32(ACCT_OUTPUT_OCTETS, low(u.output_octets))
            .add_u32(ACCT_OUTPUT_GIGAWORDS, high(u.output_octets))
            .add_u32(
                ACCT_INPUT_PACKETS,
                u.input_packets.min(u32::MAX.into()) as u32,
            )
            .add_u32(
                ACCT_OUTPUT_PACKETS,
                u.output_packets.min(u32::MAX.into()) as u32,
            );
    }
    if let Some(c) = cause {
        p.add_u32(ACCT_TERMINATE_CAUSE, c);
    }
    Request {
        packet: p,
        password: None,
    }
}

/// Accounting-On (the NAS starts: the server may close what it still
/// thinks is open) or Accounting-Off.
pub fn nas_request(
    status: u32,
    nas_identifier: &str,
    nas_ip: Option<Ipv4Addr>,
    session_id: &str,
) -> Request {
    let mut p = Packet::new(ACCOUNTING_REQUEST, 0);
    p.add_u32(ACCT_STATUS_TYPE, status)
        .add(NAS_IDENTIFIER, nas_identifier.as_bytes())
        .add(ACCT_SESSION_ID, session_id.as_bytes());
    if let Some(ip) = nas_ip {
        p.add_ip(NAS_IP_ADDRESS, ip);
    }
    Request {
        packet: p,
        password: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_past_4_gib_carry_into_gigawords() {
        let info = SessionInfo {
            nas_identifier: "gw".into(),
            nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            user: "alice".into(),
            calling_station: "198.51.100.7".into(),
            acct_session_id: "0001".into(),
            framed_ppp: false,
        };
        let usage = Usage {
            session_time: 61,
            input_octets: (5 << 32) + 7,
            output_octets: 9,
            input_packets: 3,
            output_packets: 4,
        };
        let r = session_request(
            &info,
            ACCT_STOP,
            Some(Ipv4Addr::new(10, 0, 0, 9)),
            &[b"gold".to_vec()],
            Some(&usage),
            Some(cause::ADMIN_RESET),
            1_700_000_000,
        );
        let p = &r.packet;
        assert_eq!(p.get_u32(ACCT_STATUS_TYPE), Some(ACCT_STOP));
        assert_eq!(p.get_u32(ACCT_INPUT_OCTETS), Some(7));
        assert_eq!(p.get_u32(ACCT_INPUT_GIGAWORDS), Some(5));
        assert_eq!(p.get_u32(ACCT_OUTPUT_OCTETS), Some(9));
        assert_eq!(p.get_u32(ACCT_TERMINATE_CAUSE), Some(6));
        assert_eq!(p.get(CLASS), Some(&b"gold"[..]));
        assert_eq!(
            p.get_ip(FRAMED_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 0, 0, 9))
        );
        assert_eq!(p.get_str(ACCT_SESSION_ID).as_deref(), Some("0001"));
        assert_eq!(p.get(FRAMED_PROTOCOL), None, "native sessions are not PPP");
    }
}
