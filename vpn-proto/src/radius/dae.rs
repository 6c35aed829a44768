//! Dynamic authorization (RFC 5176), the NAS's side: a Disconnect-Request
//! names sessions by User-Name, Acct-Session-Id and/or Framed-IP-Address;
//! we answer ACK when we ended one, NAK with an Error-Cause otherwise.
//! CoA-Requests are answered CoA-NAK "Unsupported Service": a session's
//! authorization does not change while it runs here.
use std::net::Ipv4Addr;

use super::{
    consts::*,
    packet::{self, Error, Packet},
};

/// Which sessions a Disconnect-Request names: all given attributes must
/// match (RFC 5176 §3).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub session_id: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
}

impl Target {
    pub fn matches(&self, user: &str, session_id: &str, ip: Option<Ipv4Addr>) -> bool {
        self.user.as_deref().is_none_or(|u| u == user)
            && self.session_id.as_deref().is_none_or(|s| s == session_id)
            && self.framed_ip.is_none_or(|a| Some(a) == ip)
    }
}

/// What to do with a verified request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Disconnect(Target),
    /// Answer at once with this NAK's Error-Cause.
    Refuse(u32),
}

/// Attributes a Disconnect-Request may carry that we understand (the
/// identifying ones and the packet's own machinery).
const KNOWN: &[u8] = &[
    USER_NAME,
    ACCT_SESSION_ID,
    FRAMED_IP_ADDRESS,
    NAS_IP_ADDRESS,
    NAS_IDENTIFIER,
    CALLING_STATION_ID,
    EVENT_TIMESTAMP,
    MESSAGE_AUTHENTICATOR,
    PROXY_STATE,
];

/// Verifies a request from a dynamic-authorization client with `secret`
/// and says what it asks. Err: not a request (or a forgery): drop it.
pub fn handle_request(bytes: &[u8], secret: &[u8]) -> Result<(Packet, Action), Error> {
    let p = packet::verify_signed_request(bytes, secret)?;
    let action = match p.code {
        DISCONNECT_REQUEST => disconnect(&p),
        COA_REQUEST => Action::Refuse(error_cause::UNSUPPORTED_SERVICE),
        _ => return Err(Error::Malformed),
    };
    Ok((p, action))
}

fn disconnect(p: &Packet) -> Action {
    if p.attrs.iter().any(|a| !KNOWN.contains(&a.kind)) {
        return Action::Refuse(error_cause::UNSUPPORTED_ATTRIBUTE);
    }
    let framed_ip = match p.get(FRAMED_IP_ADDRESS) {
        Some(_) => match p.get_ip(FRAMED_IP_ADDRESS) {
            Some(ip) => Some(ip),
            None => return Action::Refuse(error_cause::INVALID_REQUEST),
        },
        None => None,
    };
    let t = Target {
        user: p.get_str(USER_NAME),
        session_id: p.get_str(ACCT_SESSION_ID),
        framed_ip,
    };
    if t == Target::default() {
        return Action::Refuse(error_cause::MISSING_ATTRIBUTE);
    }
    Action::Disconnect(t)
}

/// The ACK (`error` None) or NAK to `req`, with its Proxy-States echoed.
pub fn reply(req: &Packet, error: Option<u32>, secret: &[u8]) -> Vec<u8> {
    let code = match (req.code, error) {
        (DISCONNECT_REQUEST, None) => DISCONNECT_ACK,
        (DISCONNECT_REQUEST, Some(_)) => DISCONNECT_NAK,
        (_, None) => COA_ACK,
        (_, Some(_)) => COA_NAK,
    };
    let mut r = Packet::new(code, req.id);
    if let Some(e) = error {
        r.add_u32(ERROR_CAUSE, e);
    }
    for ps in req.get_all(PROXY_STATE) {
        r.add(PROXY_STATE, ps);
    }
    packet::encode_response(&r, &req.authenticator, secret, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"dae-secret";

    fn request(code: u8, attrs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = Packet::new(code, 9);
        for (k, v) in attrs {
            p.add(*k, v);
        }
        let b = packet::encode_signed_request(&p, S);
        crate::fuzz_seed::save("radius", &b);
        b
    }

    #[test]
    fn a_disconnect_names_its_sessions_and_gets_a_signed_answer() {
        let b = request(
            DISCONNECT_REQUEST,
            &[
                (USER_NAME, b"alice"),
                (FRAMED_IP_ADDRESS, &[10, 1, 0, 5]),
                (PROXY_STATE, b"ps"),
            ],
        );
        let (p, action) = handle_request(&b, S).unwrap();
        let Action::Disconnect(t) = action else {
            panic!("{action:?}")
        };
        assert!(t.matches("alice", "x", Some(Ipv4Addr::new(10, 1, 0, 5))));
        assert!(!t.matches("alice", "x", Some(Ipv4Addr::new(10, 1, 0, 6))));
        assert!(!t.matches("bob", "x", Some(Ipv4Addr::new(10, 1, 0, 5))));
        let ack = reply(&p, None, S);
        let (r, signed) = packet::verify_response(&ack, &p.authenticator, S).unwrap();
        assert_eq!((r.code, r.id, signed), (DISCONNECT_ACK, 9, true));
        assert_eq!(r.get(PROXY_STATE), Some(&b"ps"[..]));
        let nak = reply(&p, Some(error_cause::SESSION_NOT_FOUND), S);
        let (r, _) = packet::verify_response(&nak, &p.authenticator, S).unwrap();
        assert_eq!(r.code, DISCONNECT_NAK);
        assert_eq!(r.get_u32(ERROR_CAUSE), Some(503));
    }

    #[test]
    fn forgeries_coa_and_odd_requests() {
        let b = request(DISCONNECT_REQUEST, &[(USER_NAME, b"alice")]);
        assert!(handle_request(&b, b"wrong").is_err());
        let refused = |b: Vec<u8>| match handle_request(&b, S).unwrap().1 {
            Action::Refuse(c) => c,
            a => panic!("{a:?}"),
        };
        assert_eq!(
            refused(request(COA_REQUEST, &[(USER_NAME, b"a")])),
            error_cause::UNSUPPORTED_SERVICE
        );
        assert_eq!(
            refused(request(DISCONNECT_REQUEST, &[])),
            error_cause::MISSING_ATTRIBUTE
        );
        assert_eq!(
            refused(request(
                DISCONNECT_REQUEST,
                &[(USER_NAME, b"a"), (SESSION_TIMEOUT, &[0, 0, 0, 1])]
            )),
            error_cause::UNSUPPORTED_ATTRIBUTE
        );
        assert_eq!(
            refused(request(DISCONNECT_REQUEST, &[(FRAMED_IP_ADDRESS, b"xx")])),
            error_cause::INVALID_REQUEST
        );
        assert!(handle_request(&request(ACCESS_REQUEST, &[]), S).is_err());
    }
}
