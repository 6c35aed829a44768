//! The LNS tunnel engine against a LAC scripted from the same codecs, on a
//! virtual clock.
use std::time::{Duration, Instant};

use super::{
    avp::{self, Avp, Hide, Writer},
    channel::MAX_RETRIES,
    consts::*,
    header::Header,
    tunnel::{Bad, Tunnel, TunnelConfig, TunnelEvent},
};

const PEER_TUNNEL: u16 = 0x4321;
const OUR_TUNNEL: u16 = 77;

fn cfg(secret: Option<&[u8]>, hide: bool) -> TunnelConfig {
    TunnelConfig {
        host_name: "gw".into(),
        secret: secret.map(<[u8]>::to_vec),
        hide_avps: hide,
        hello_interval: Duration::from_secs(60),
        max_sessions: 2,
    }
}

/// The client's side: its own Ns/Nr and message builders.
struct Lac {
    ns: u16,
    nr: u16,
    secret: Option<Vec<u8>>,
}

impl Lac {
    fn new(secret: Option<&[u8]>) -> Lac {
        Lac {
            ns: 0,
            nr: 0,
            secret: secret.map(<[u8]>::to_vec),
        }
    }

    fn msg(&mut self, tunnel: u16, session: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        Header::encode_control(&mut m, tunnel, session, self.ns, self.nr, body.len());
        m.extend_from_slice(body);
        self.ns = self.ns.wrapping_add(1);
        crate::fuzz_seed::save("l2tp", &m);
        crate::fuzz_seed::save_frames("l2tp", &[], &[&m]);
        m
    }

    fn zlb(&self) -> Vec<u8> {
        let mut m = Vec::new();
        Header::encode_control(&mut m, OUR_TUNNEL, 0, self.ns, self.nr, 0);
        m
    }

    /// A message from the LNS: header, AVPs (empty for a ZLB); advances Nr.
    fn read(&mut self, d: &[u8]) -> (Header, Vec<Avp>) {
        let h = Header::decode(d).unwrap();
        assert!(h.control);
        let body = &d[h.payload_at..h.end];
        if !body.is_empty() && h.seq.unwrap().0 == self.nr {
            self.nr = self.nr.wrapping_add(1);
        }
        (h, avp::parse(body, self.secret.as_deref()).unwrap())
    }

    fn sccrq(&mut self, challenge: Option<&[u8]>) -> Vec<u8> {
        let mut w = Writer::new(SCCRQ, None);
        w.u16(A_PROTOCOL_VERSION, 0x0100)
            .bytes(A_HOST_NAME, b"lac")
            .u32(A_FRAMING_CAPABILITIES, 3)
            .u16(A_ASSIGNED_TUNNEL_ID, PEER_TUNNEL)
            .u16(A_RECEIVE_WINDOW_SIZE, 4);
        if let Some(c) = challenge {
            w.bytes(A_CHALLENGE, c);
        }
        let b = w.out;
        self.msg(0, 0, &b)
    }
}

fn kind(avps: &[Avp]) -> Option<u16> {
    avp::find_u16(avps, A_MESSAGE_TYPE)
}

fn drain(t: &mut Tunnel) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| t.poll_transmit()).collect()
}

fn events(t: &mut Tunnel) -> Vec<TunnelEvent> {
    std::iter::from_fn(|| t.poll()).collect()
}

fn new_tunnel(c: TunnelConfig, first: &[u8], now: Instant) -> Tunnel {
    let (peer, window) = Tunnel::sccrq_ids(first, c.secret.as_deref()).unwrap();
    assert_eq!(peer, PEER_TUNNEL);
    Tunnel::new(c, OUR_TUNNEL, peer, window, [9; 32], now)
}

/// SCCRQ .. SCCCN: returns the established tunnel.
fn establish(lac: &mut Lac, c: TunnelConfig, now: Instant) -> Tunnel {
    let rq = lac.sccrq(None);
    let mut t = new_tunnel(c, &rq, now);
    t.handle_datagram(now, &rq).unwrap();
    let out = drain(&mut t);
    assert_eq!(out.len(), 1, "SCCRP alone (it carries the ack)");
    let (h, avps) = lac.read(&out[0]);
    assert_eq!((h.tunnel_id, kind(&avps)), (PEER_TUNNEL, Some(SCCRP)));
    assert_eq!(h.seq, Some((0, 1)));
    let mut w = Writer::new(SCCCN, None);
    if let (Some(c), Some(s)) = (avp::find(&avps, A_CHALLENGE), &lac.secret) {
        w.bytes(A_CHALLENGE_RESPONSE, &avp::challenge_response(SCCCN, s, c));
    }
    let b = w.out;
    let cn = lac.msg(OUR_TUNNEL, 0, &b);
    t.handle_datagram(now, &cn).unwrap();
    let out = drain(&mut t);
    assert_eq!(out.len(), 1);
    let (h, avps) = lac.read(&out[0]);
    assert!(avps.is_empty(), "a ZLB acknowledges SCCCN at once");
    assert_eq!(h.seq, Some((1, 2)));
    assert_eq!(events(&mut t), vec![TunnelEvent::Up]);
    t
}

fn call(lac: &mut Lac, t: &mut Tunnel, peer_session: u16, now: Instant) -> u16 {
    let mut w = Writer::new(ICRQ, None);
    w.u16(A_ASSIGNED_SESSION_ID, peer_session)
        .u32(A_CALL_SERIAL_NUMBER, 1);
    let b = w.out;
    let rq = lac.msg(OUR_TUNNEL, 0, &b);
    t.handle_datagram(now, &rq).unwrap();
    let out = drain(t);
    let (h, avps) = lac.read(&out[0]);
    assert_eq!((h.session_id, kind(&avps)), (peer_session, Some(ICRP)));
    let ours = avp::find_u16(&avps, A_ASSIGNED_SESSION_ID).unwrap();
    let mut w = Writer::new(ICCN, None);
    w.u32(A_TX_CONNECT_SPEED, 100_000_000)
        .u32(A_FRAMING_TYPE, 3);
    let b = w.out;
    let cn = lac.msg(OUR_TUNNEL, ours, &b);
    t.handle_datagram(now, &cn).unwrap();
    let out = drain(t);
    assert!(lac.read(&out[0]).1.is_empty(), "ICCN acknowledged at once");
    assert_eq!(
        events(t),
        vec![TunnelEvent::SessionUp {
            session: ours,
            peer_session,
            sequencing: false
        }]
    );
    assert_eq!(t.peer_session(ours), Some(peer_session));
    ours
}

#[test]
fn tunnel_and_calls_set_up_and_end_from_either_side() {
    let now = Instant::now();
    let mut lac = Lac::new(None);
    let mut t = establish(&mut lac, cfg(None, false), now);
    let s1 = call(&mut lac, &mut t, 5, now);
    let s2 = call(&mut lac, &mut t, 6, now);
    assert_ne!(s1, s2);
    // A third call is over the limit: CDN with "no resources".
    let mut w = Writer::new(ICRQ, None);
    w.u16(A_ASSIGNED_SESSION_ID, 7).u32(A_CALL_SERIAL_NUMBER, 3);
    let b = w.out;
    let m = lac.msg(OUR_TUNNEL, 0, &b);
    t.handle_datagram(now, &m).unwrap();
    let (h, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!((h.session_id, kind(&avps)), (7, Some(CDN)));
    assert_eq!(
        &avp::find(&avps, A_RESULT_CODE).unwrap()[..2],
        &CDN_NO_RESOURCES.to_be_bytes()
    );
    // The client hangs up call 1.
    let mut w = Writer::new(CDN, None);
    w.result(1, 0, "bye").u16(A_ASSIGNED_SESSION_ID, 5);
    let b = w.out;
    let m = lac.msg(OUR_TUNNEL, s1, &b);
    t.handle_datagram(now, &m).unwrap();
    assert!(
        matches!(&events(&mut t)[..], [TunnelEvent::SessionClosed { session, .. }] if *session == s1)
    );
    drain(&mut t);
    // We end call 2.
    t.close_session(now, s2, "killed");
    let (h, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!((h.session_id, kind(&avps)), (6, Some(CDN)));
    assert_eq!(t.sessions(), 0);
    // The client stops the tunnel: acknowledged, closed.
    let mut w = Writer::new(STOPCCN, None);
    w.u16(A_ASSIGNED_TUNNEL_ID, PEER_TUNNEL).result(1, 0, "");
    let b = w.out;
    let m = lac.msg(OUR_TUNNEL, 0, &b);
    t.handle_datagram(now, &m).unwrap();
    assert!(matches!(&events(&mut t)[..], [TunnelEvent::Closed { .. }]));
    let out = drain(&mut t);
    assert!(
        lac.read(out.last().unwrap()).1.is_empty(),
        "StopCCN acknowledged"
    );
}

#[test]
fn lost_messages_are_retransmitted_with_backoff_then_given_up() {
    let t0 = Instant::now();
    let mut lac = Lac::new(None);
    let rq = lac.sccrq(None);
    let mut t = new_tunnel(cfg(None, false), &rq, t0);
    t.handle_datagram(t0, &rq).unwrap();
    let first = drain(&mut t);
    let mut at = t0;
    let mut gaps = Vec::new();
    for _ in 0..MAX_RETRIES {
        let due = t.poll_timeout().unwrap();
        gaps.push(due - at);
        at = due;
        t.handle_timeout(at);
        let again = drain(&mut t);
        assert_eq!(again, first, "the same SCCRP again");
    }
    assert_eq!(gaps[..4], [1, 2, 4, 8].map(Duration::from_secs));
    assert_eq!(gaps[4], Duration::from_secs(8), "capped");
    t.handle_timeout(t.poll_timeout().unwrap());
    assert!(matches!(&events(&mut t)[..], [TunnelEvent::Closed { .. }]));
    assert!(t.is_closed());
}

#[test]
fn duplicates_are_acknowledged_again_and_not_delivered_twice() {
    let now = Instant::now();
    let mut lac = Lac::new(None);
    let rq = lac.sccrq(None);
    let mut t = new_tunnel(cfg(None, false), &rq, now);
    t.handle_datagram(now, &rq).unwrap();
    drain(&mut t);
    // The SCCRQ again (our SCCRP "lost" on the way).
    assert_eq!(t.handle_datagram(now, &rq), Err(Bad::Duplicate));
    let out = drain(&mut t);
    assert_eq!(out.len(), 1);
    assert!(lac.read(&out[0]).1.is_empty(), "a ZLB, not a second SCCRP");
    // Ns far beyond the window.
    lac.ns = 3000;
    let far = lac.msg(OUR_TUNNEL, 0, &Writer::new(HELLO, None).out);
    assert_eq!(t.handle_datagram(now, &far), Err(Bad::OutOfWindow));
    // Out of order inside the window: held, delivered when the gap fills.
    let mut lac = Lac::new(None);
    let mut t = establish(&mut lac, cfg(None, false), now);
    let mut w = Writer::new(ICRQ, None);
    w.u16(A_ASSIGNED_SESSION_ID, 9).u32(A_CALL_SERIAL_NUMBER, 1);
    let icrq = lac.msg(OUR_TUNNEL, 0, &w.out.clone());
    let hello = lac.msg(OUR_TUNNEL, 0, &Writer::new(HELLO, None).out);
    assert_eq!(t.handle_datagram(now, &hello), Err(Bad::Duplicate));
    t.handle_datagram(now, &icrq).unwrap();
    let out = drain(&mut t);
    let (h, avps) = lac.read(&out[0]);
    assert_eq!(kind(&avps), Some(ICRP));
    assert_eq!(h.seq.unwrap().1, 4, "both acknowledged");
}

#[test]
fn challenge_and_hidden_avps_with_a_secret() {
    let now = Instant::now();
    let secret: &[u8] = b"s3cret";
    let mut lac = Lac::new(Some(secret));
    let their_challenge = [0x55u8; 16];
    let rq = lac.sccrq(Some(&their_challenge));
    let mut t = new_tunnel(cfg(Some(secret), true), &rq, now);
    t.handle_datagram(now, &rq).unwrap();
    let out = drain(&mut t);
    let (_, avps) = lac.read(&out[0]);
    assert_eq!(
        avp::find(&avps, A_CHALLENGE_RESPONSE),
        Some(&avp::challenge_response(SCCRP, secret, &their_challenge)[..])
    );
    assert_eq!(avp::find_u16(&avps, A_ASSIGNED_TUNNEL_ID), Some(OUR_TUNNEL));
    assert!(
        avps.iter().any(|a| a.attr == A_RANDOM_VECTOR),
        "hidden AVPs sent"
    );
    let our_challenge = avp::find(&avps, A_CHALLENGE).unwrap().to_vec();
    // A wrong response: StopCCN "not authorized".
    let mut w = Writer::new(SCCCN, None);
    w.bytes(A_CHALLENGE_RESPONSE, &[0u8; 16]);
    let m = lac.msg(OUR_TUNNEL, 0, &w.out.clone());
    assert_eq!(t.handle_datagram(now, &m), Err(Bad::Malformed));
    let (_, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!(kind(&avps), Some(STOPCCN));
    assert_eq!(
        &avp::find(&avps, A_RESULT_CODE).unwrap()[..2],
        &STOP_NOT_AUTHORIZED.to_be_bytes()
    );
    assert!(!our_challenge.is_empty());
    // The right response, and the client's hidden Assigned Session ID.
    let mut lac = Lac::new(Some(secret));
    let mut t = establish(&mut lac, cfg(Some(secret), true), now);
    let mut w = Writer::new(
        ICRQ,
        Some(Hide {
            secret,
            vector: [3; 16],
        }),
    );
    w.hidden(A_ASSIGNED_SESSION_ID, &44u16.to_be_bytes())
        .u32(A_CALL_SERIAL_NUMBER, 1);
    let m = lac.msg(OUR_TUNNEL, 0, &w.out.clone());
    t.handle_datagram(now, &m).unwrap();
    let (h, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!((h.session_id, kind(&avps)), (44, Some(ICRP)));
    assert!(
        avps.iter().any(|a| a.attr == A_RANDOM_VECTOR),
        "hidden AVPs sent"
    );
    assert!(
        avps.iter().any(|a| a.hidden),
        "the assigned session ID hidden"
    );
    // Without a secret, a challenging client is refused.
    let mut lac = Lac::new(None);
    let rq = lac.sccrq(Some(&their_challenge));
    let mut t = new_tunnel(cfg(None, false), &rq, now);
    assert!(t.handle_datagram(now, &rq).is_err());
    let (_, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!(kind(&avps), Some(STOPCCN));
}

#[test]
fn unknown_mandatory_avps_and_malformed_bodies() {
    let now = Instant::now();
    // In a call's ICCN: the call ends with CDN (error 8), the tunnel stays.
    let mut lac = Lac::new(None);
    let mut t = establish(&mut lac, cfg(None, false), now);
    let mut w = Writer::new(ICRQ, None);
    w.u16(A_ASSIGNED_SESSION_ID, 5).u32(A_CALL_SERIAL_NUMBER, 1);
    let m = lac.msg(OUR_TUNNEL, 0, &w.out.clone());
    t.handle_datagram(now, &m).unwrap();
    let (_, avps) = lac.read(&drain(&mut t)[0]);
    let ours = avp::find_u16(&avps, A_ASSIGNED_SESSION_ID).unwrap();
    let mut w = Writer::new(ICCN, None);
    w.u32(A_TX_CONNECT_SPEED, 1).u16(300, 1);
    let m = lac.msg(OUR_TUNNEL, ours, &w.out.clone());
    assert_eq!(t.handle_datagram(now, &m), Err(Bad::Malformed));
    let (h, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!((h.session_id, kind(&avps)), (5, Some(CDN)));
    assert_eq!(
        &avp::find(&avps, A_RESULT_CODE).unwrap()[2..4],
        &ERR_UNKNOWN_MANDATORY.to_be_bytes()
    );
    assert!(t.is_up());
    // An AVP length past the end: StopCCN.
    let mut body = Writer::new(HELLO, None).out;
    body.extend_from_slice(&[0x80, 0x40, 0, 0, 0, 7]);
    let m = lac.msg(OUR_TUNNEL, 0, &body);
    assert_eq!(t.handle_datagram(now, &m), Err(Bad::Malformed));
    let out = drain(&mut t);
    assert_eq!(kind(&lac.read(&out[0]).1), Some(STOPCCN));
    assert!(!t.is_up());
}

#[test]
fn hello_after_silence_and_outgoing_calls_refused() {
    let now = Instant::now();
    let mut lac = Lac::new(None);
    let mut t = establish(&mut lac, cfg(None, false), now);
    let due = t.poll_timeout().unwrap();
    assert_eq!(due - now, Duration::from_secs(60));
    t.handle_timeout(due);
    let (_, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!(kind(&avps), Some(HELLO));
    t.handle_datagram(due, &lac.zlb()).unwrap();
    assert!(t.poll_timeout().unwrap() > due, "no busy loop after HELLO");
    let mut w = Writer::new(OCRQ, None);
    w.u16(A_ASSIGNED_SESSION_ID, 8).u32(A_CALL_SERIAL_NUMBER, 1);
    let m = lac.msg(OUR_TUNNEL, 0, &w.out.clone());
    t.handle_datagram(due, &m).unwrap();
    let (h, avps) = lac.read(&drain(&mut t)[0]);
    assert_eq!((h.session_id, kind(&avps)), (8, Some(CDN)));
}

#[test]
fn a_carried_tunnel_keeps_its_sequence_numbers_calls_and_unacked_messages() {
    let now = Instant::now();
    let mut lac = Lac::new(None);
    let mut t = establish(&mut lac, cfg(None, false), now);
    let s1 = call(&mut lac, &mut t, 5, now);
    // Our CDN for a second call is in flight (not acknowledged) at the restart.
    let s2 = call(&mut lac, &mut t, 6, now);
    t.close_session(now, s2, "ending");
    let cdn = drain(&mut t);
    assert_eq!(cdn.len(), 1);
    let carried = t.carry().expect("an established tunnel");
    let json = serde_json::to_string(&carried).unwrap();
    let carried: super::tunnel::TunnelCarry = serde_json::from_str(&json).unwrap();
    let later = now + Duration::from_millis(300);
    let mut r = Tunnel::resume(cfg(None, false), &carried, later);
    assert_eq!((r.local_id, r.peer_id), (t.local_id, t.peer_id));
    assert_eq!(r.peer_session(s1), Some(5));
    // The unacknowledged CDN is sent again, with its sequence numbers.
    r.handle_timeout(r.poll_timeout().unwrap());
    assert_eq!(drain(&mut r), cdn);
    let (h, avps) = lac.read(&cdn[0]);
    assert_eq!((h.session_id, kind(&avps)), (6, Some(CDN)));
    // The client's next message is in sequence: delivered and acknowledged.
    let mut w = Writer::new(CDN, None);
    w.result(1, 0, "bye").u16(A_ASSIGNED_SESSION_ID, 5);
    let b = w.out;
    let m = lac.msg(OUR_TUNNEL, s1, &b);
    r.handle_datagram(later, &m).unwrap();
    assert!(
        matches!(&events(&mut r)[..], [TunnelEvent::SessionClosed { session, .. }] if *session == s1)
    );
    assert!(
        t.carry().is_some()
            && Tunnel::new(cfg(None, false), 1, 2, None, [0; 32], now)
                .carry()
                .is_none()
    );
}
