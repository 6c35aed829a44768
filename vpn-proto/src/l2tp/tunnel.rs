//! One L2TP tunnel, the LNS's side (RFC 2661), sans-IO: datagrams and
//! `now` in; datagrams, events and a deadline out. Control connection set-up
//! (SCCRQ/SCCRP/SCCCN, with challenge/response when a secret is set),
//! StopCCN, HELLO keepalive, incoming calls (ICRQ/ICRP/ICCN), CDN both
//! ways; outgoing-call requests refused; WEN and SLI accepted.
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq as _;

use super::{
    avp::{self, Avp, AvpError, Hide, Writer},
    channel::{Channel, Received, RECV_WINDOW},
    consts::*,
    header::Header,
};

#[derive(Clone, Debug)]
pub struct TunnelConfig {
    pub host_name: String,
    /// The tunnel secret: challenge the peer, answer its challenge, read
    /// and write hidden AVPs. None: a peer that challenges is refused.
    pub secret: Option<Vec<u8>>,
    /// Hide the IDs we assign (needs `secret`).
    pub hide_avps: bool,
    /// HELLO after this much silence from the peer.
    pub hello_interval: Duration,
    pub max_sessions: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelEvent {
    /// The control connection is established (SCCCN accepted).
    Up,
    /// A call is connected (ICCN): start PPP. `sequencing`: the peer wants
    /// Ns/Nr on data messages.
    SessionUp {
        session: u16,
        peer_session: u16,
        sequencing: bool,
    },
    /// The peer ended a call (CDN).
    SessionClosed { session: u16, reason: String },
    /// The tunnel is over; every session with it.
    Closed { reason: String },
}

/// Why a datagram did nothing (for counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    Malformed,
    OutOfWindow,
    Duplicate,
    /// A hidden AVP we could not reveal (no secret, no random vector).
    Hidden,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    WaitSccrq,
    WaitScccn,
    Established,
    /// We sent StopCCN (or got one); over once the channel is quiet.
    Closing,
    Closed,
}

/// An established tunnel as plain data (`Tunnel::carry`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelCarry {
    pub local_id: u16,
    pub peer_id: u16,
    pub chan: super::channel::ChannelCarry,
    /// Random-vector generator state (hidden AVPs).
    pub seed: [u8; 16],
    pub counter: u64,
    /// (our session ID, the peer's, connected).
    pub calls: Vec<(u16, u16, bool)>,
    pub next_session: u16,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    peer: u16,
    connected: bool,
}

pub struct Tunnel {
    cfg: TunnelConfig,
    pub local_id: u16,
    pub peer_id: u16,
    state: State,
    chan: Channel,
    seed: [u8; 16],
    counter: u64,
    our_challenge: Option<[u8; 16]>,
    calls: HashMap<u16, Call>,
    next_session: u16,
    last_rx: Instant,
    hello_due: Option<Instant>,
    events: VecDeque<TunnelEvent>,
}

fn result_text(v: &[u8]) -> String {
    // Result (2), error (2, optional), message; Apple clients send the
    // codes little-endian, so only the message is trusted for the log.
    let code = v.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    let msg: String = v
        .get(4..)
        .unwrap_or_default()
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .take(120)
        .collect();
    match (code, msg.is_empty()) {
        (Some(c), true) => format!("result code {c}"),
        (Some(c), false) => format!("result code {c}: {msg}"),
        (None, _) => "no result code".into(),
    }
}

impl Tunnel {
    /// A tunnel for a peer whose SCCRQ (tunnel ID 0) named `peer_id` as its
    /// tunnel; feed that SCCRQ to `handle_datagram` next. `random`: 32
    /// fresh bytes (challenge, random vectors, session IDs).
    pub fn new(
        cfg: TunnelConfig,
        local_id: u16,
        peer_id: u16,
        peer_window: Option<u16>,
        random: [u8; 32],
        now: Instant,
    ) -> Tunnel {
        let seed: [u8; 16] = random[..16].try_into().expect("16 bytes");
        let challenge: [u8; 16] = random[16..].try_into().expect("16 bytes");
        Tunnel {
            our_challenge: cfg.secret.as_ref().map(|_| challenge),
            cfg,
            local_id,
            peer_id,
            state: State::WaitSccrq,
            chan: Channel::new(peer_id, peer_window),
            seed,
            counter: 0,
            calls: HashMap::new(),
            next_session: u16::from_be_bytes([random[0], random[1]]).max(1),
            last_rx: now,
            hello_due: None,
            events: VecDeque::new(),
        }
    }

    /// An established tunnel's state (a restart hands it over), or None for
    /// one still being set up or closing.
    pub fn carry(&self) -> Option<TunnelCarry> {
        if self.state != State::Established {
            return None;
        }
        Some(TunnelCarry {
            local_id: self.local_id,
            peer_id: self.peer_id,
            chan: self.chan.carry(),
            seed: self.seed,
            counter: self.counter,
            calls: self
                .calls
                .iter()
                .map(|(s, c)| (*s, c.peer, c.connected))
                .collect(),
            next_session: self.next_session,
        })
    }

    /// The tunnel `carry` described, under the successor's configuration.
    pub fn resume(cfg: TunnelConfig, c: &TunnelCarry, now: Instant) -> Tunnel {
        Tunnel {
            our_challenge: None,
            hello_due: Some(now + cfg.hello_interval),
            cfg,
            local_id: c.local_id,
            peer_id: c.peer_id,
            state: State::Established,
            chan: Channel::resume(&c.chan, now),
            seed: c.seed,
            counter: c.counter,
            calls: c
                .calls
                .iter()
                .map(|(s, peer, connected)| {
                    (
                        *s,
                        Call {
                            peer: *peer,
                            connected: *connected,
                        },
                    )
                })
                .collect(),
            next_session: c.next_session,
            last_rx: now,
            events: VecDeque::new(),
        }
    }

    /// The peer's Assigned Tunnel ID and Receive Window Size in an SCCRQ,
    /// so the daemon can key and build the tunnel.
    pub fn sccrq_ids(datagram: &[u8], secret: Option<&[u8]>) -> Option<(u16, Option<u16>)> {
        let h = Header::decode(datagram).ok()?;
        let avps = avp::parse(datagram.get(h.payload_at..h.end)?, secret).ok()?;
        if avp::find_u16(&avps, A_MESSAGE_TYPE)? != SCCRQ || h.tunnel_id != 0 {
            return None;
        }
        Some((
            avp::find_u16(&avps, A_ASSIGNED_TUNNEL_ID)?,
            avp::find_u16(&avps, A_RECEIVE_WINDOW_SIZE),
        ))
    }

    pub fn is_up(&self) -> bool {
        self.state == State::Established
    }

    /// Over: the daemon forgets it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn sessions(&self) -> usize {
        self.calls.len()
    }

    /// The peer's session ID of our connected session `session`.
    pub fn peer_session(&self, session: u16) -> Option<u16> {
        self.calls
            .get(&session)
            .filter(|c| c.connected)
            .map(|c| c.peer)
    }

    fn random_vector(&mut self) -> [u8; 16] {
        self.counter += 1;
        let mut h = Md5::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        h.finalize().into()
    }

    fn writer(&mut self, message_type: u16) -> Writer<'_> {
        let vector = self.random_vector();
        let hide = match (&self.cfg.secret, self.cfg.hide_avps) {
            (Some(s), true) => Some(Hide {
                secret: s.as_slice(),
                vector,
            }),
            _ => None,
        };
        Writer::new(message_type, hide)
    }

    /// A control datagram for this tunnel (its header's tunnel ID is ours,
    /// or 0 for the SCCRQ). Data messages are the daemon's.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Bad> {
        let h = Header::decode(datagram).map_err(|_| Bad::Malformed)?;
        if !h.control {
            return Err(Bad::Malformed);
        }
        let body = &datagram[h.payload_at..h.end];
        self.last_rx = now;
        match self.chan.receive(now, &h, body) {
            Received::Accepted => {}
            Received::Ack => {}
            Received::Duplicate => return Err(Bad::Duplicate),
            Received::OutOfWindow => return Err(Bad::OutOfWindow),
        }
        let mut result = Ok(());
        while let Some(msg) = self.chan.poll_delivered() {
            if let Err(e) = self.message(now, h.session_id, &msg) {
                result = Err(e);
            }
        }
        self.after(now);
        result
    }

    fn after(&mut self, now: Instant) {
        if self.state == State::Closing && self.chan.idle() {
            self.state = State::Closed;
        }
        if self.state == State::Established {
            let due = self.last_rx + self.cfg.hello_interval;
            self.hello_due = Some(self.hello_due.map_or(due, |d| d.max(due)));
        }
        let _ = now;
    }

    fn message(&mut self, now: Instant, session: u16, body: &[u8]) -> Result<(), Bad> {
        let secret = self.cfg.secret.clone();
        let avps = match avp::parse(body, secret.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                let hidden = matches!(
                    e,
                    AvpError::HiddenWithoutSecret | AvpError::HiddenWithoutVector
                );
                if self.state == State::WaitSccrq || !hidden {
                    self.stop(now, STOP_GENERAL_ERROR, ERR_BAD_LENGTH, &e.to_string());
                }
                return Err(if hidden { Bad::Hidden } else { Bad::Malformed });
            }
        };
        let Some(kind) = avps
            .first()
            .filter(|a| a.attr == A_MESSAGE_TYPE && a.vendor == 0)
            .and_then(|_| avp::find_u16(&avps, A_MESSAGE_TYPE))
        else {
            self.stop(
                now,
                STOP_GENERAL_ERROR,
                ERR_BAD_VALUE,
                "the first AVP is not a Message Type",
            );
            return Err(Bad::Malformed);
        };
        if let Some((vendor, attr)) = avp::unknown_mandatory(&avps) {
            let why = format!("unknown mandatory AVP {vendor}:{attr}");
            if matches!(kind, ICRQ | ICCN | CDN | OCRQ) && session != 0 {
                self.close_session_err(
                    now,
                    session,
                    CDN_GENERAL_ERROR,
                    ERR_UNKNOWN_MANDATORY,
                    &why,
                );
            } else {
                self.stop(now, STOP_GENERAL_ERROR, ERR_UNKNOWN_MANDATORY, &why);
            }
            return Err(Bad::Malformed);
        }
        match (kind, self.state) {
            (SCCRQ, State::WaitSccrq) => self.sccrq(now, &avps),
            (SCCCN, State::WaitScccn) => self.scccn(now, &avps),
            (STOPCCN, _) => {
                let why = avp::find(&avps, A_RESULT_CODE)
                    .map_or_else(|| "no result code".into(), result_text);
                self.events.push_back(TunnelEvent::Closed {
                    reason: format!("the client stopped the tunnel ({why})"),
                });
                self.calls.clear();
                self.state = State::Closing;
                Ok(())
            }
            (HELLO | WEN | SLI, _) => Ok(()),
            (ICRQ, State::Established) => self.icrq(now, &avps),
            (ICCN, State::Established) => self.iccn(session, &avps),
            (CDN, _) => self.cdn(session, &avps),
            (OCRQ, State::Established) => {
                let peer = avp::find_u16(&avps, A_ASSIGNED_SESSION_ID).unwrap_or(0);
                let mut w = self.writer(CDN);
                w.result(
                    CDN_GENERAL_ERROR,
                    ERR_VENDOR,
                    "this LNS accepts no outgoing calls",
                )
                .u16(A_ASSIGNED_SESSION_ID, 0);
                let b = w.out;
                self.chan.send(now, peer, b);
                Ok(())
            }
            (_, State::Closing | State::Closed) => Ok(()),
            _ => {
                self.stop(
                    now,
                    STOP_GENERAL_ERROR,
                    ERR_BAD_VALUE,
                    "message out of order",
                );
                Err(Bad::Malformed)
            }
        }
    }

    fn sccrq(&mut self, now: Instant, avps: &[Avp]) -> Result<(), Bad> {
        if avp::find_u16(avps, A_PROTOCOL_VERSION) != Some(0x0100) {
            self.stop(now, STOP_BAD_VERSION, ERR_NONE, "L2TP version 1.0 only");
            return Err(Bad::Malformed);
        }
        if avp::find(avps, A_HOST_NAME).is_none()
            || avp::find(avps, A_FRAMING_CAPABILITIES).is_none()
        {
            self.stop(
                now,
                STOP_GENERAL_ERROR,
                ERR_BAD_VALUE,
                "SCCRQ without Host Name or Framing Capabilities",
            );
            return Err(Bad::Malformed);
        }
        let their_challenge = avp::find(avps, A_CHALLENGE).map(<[u8]>::to_vec);
        let response = match (&their_challenge, &self.cfg.secret) {
            (Some(c), Some(s)) => Some(avp::challenge_response(SCCRP, s, c)),
            (Some(_), None) => {
                self.stop(
                    now,
                    STOP_NOT_AUTHORIZED,
                    ERR_NONE,
                    "this LNS has no tunnel secret",
                );
                return Err(Bad::Malformed);
            }
            _ => None,
        };
        let host = self.cfg.host_name.clone();
        let (local_id, challenge) = (self.local_id, self.our_challenge);
        let mut w = self.writer(SCCRP);
        // Nothing hidden in SCCRP: xl2tpd looks its secret up only after
        // reading the whole message, so it cannot reveal AVPs hidden here.
        w.u16(A_PROTOCOL_VERSION, 0x0100)
            .bytes(A_HOST_NAME, host.as_bytes());
        if let Some(c) = challenge {
            w.bytes(A_CHALLENGE, &c);
        }
        if let Some(r) = response {
            w.bytes(A_CHALLENGE_RESPONSE, &r);
        }
        w.u32(A_FRAMING_CAPABILITIES, 3)
            .u32(A_BEARER_CAPABILITIES, 0)
            .u16(A_FIRMWARE_REVISION, 0x0100)
            .bytes(A_VENDOR_NAME, b"vpn-ctl")
            .u16(A_ASSIGNED_TUNNEL_ID, local_id)
            .u16(A_RECEIVE_WINDOW_SIZE, RECV_WINDOW);
        let b = w.out;
        self.chan.send(now, 0, b);
        self.state = State::WaitScccn;
        Ok(())
    }

    fn scccn(&mut self, now: Instant, avps: &[Avp]) -> Result<(), Bad> {
        if let (Some(c), Some(s)) = (self.our_challenge, &self.cfg.secret) {
            let want = avp::challenge_response(SCCCN, s, &c);
            let ok =
                avp::find(avps, A_CHALLENGE_RESPONSE).is_some_and(|r| bool::from(r.ct_eq(&want)));
            if !ok {
                self.stop(
                    now,
                    STOP_NOT_AUTHORIZED,
                    ERR_NONE,
                    "wrong or missing challenge response",
                );
                return Err(Bad::Malformed);
            }
        }
        self.state = State::Established;
        self.events.push_back(TunnelEvent::Up);
        Ok(())
    }

    fn icrq(&mut self, now: Instant, avps: &[Avp]) -> Result<(), Bad> {
        let Some(peer) = avp::find_u16(avps, A_ASSIGNED_SESSION_ID).filter(|s| *s != 0) else {
            self.stop(
                now,
                STOP_GENERAL_ERROR,
                ERR_BAD_VALUE,
                "ICRQ without Assigned Session ID",
            );
            return Err(Bad::Malformed);
        };
        // A retransmitted ICRQ whose ICRP was lost is answered by the channel.
        if self.calls.values().any(|c| c.peer == peer) {
            return Ok(());
        }
        if self.calls.len() >= self.cfg.max_sessions {
            let mut w = self.writer(CDN);
            w.result(CDN_NO_RESOURCES, ERR_NO_RESOURCES, "session limit reached")
                .u16(A_ASSIGNED_SESSION_ID, 0);
            let b = w.out;
            self.chan.send(now, peer, b);
            return Ok(());
        }
        let mut local = self.next_session;
        while local == 0 || self.calls.contains_key(&local) {
            local = local.wrapping_add(1);
        }
        self.next_session = local.wrapping_add(1);
        self.calls.insert(
            local,
            Call {
                peer,
                connected: false,
            },
        );
        let mut w = self.writer(ICRP);
        w.hidden(A_ASSIGNED_SESSION_ID, &local.to_be_bytes());
        let b = w.out;
        self.chan.send(now, peer, b);
        Ok(())
    }

    fn iccn(&mut self, session: u16, avps: &[Avp]) -> Result<(), Bad> {
        let Some(call) = self.calls.get_mut(&session).filter(|c| !c.connected) else {
            return Err(Bad::Malformed);
        };
        call.connected = true;
        let peer = call.peer;
        self.events.push_back(TunnelEvent::SessionUp {
            session,
            peer_session: peer,
            sequencing: avp::find(avps, A_SEQUENCING_REQUIRED).is_some(),
        });
        Ok(())
    }

    fn cdn(&mut self, session: u16, avps: &[Avp]) -> Result<(), Bad> {
        let local = if self.calls.contains_key(&session) {
            Some(session)
        } else {
            // Before our ICRP arrived the peer knows only its own ID.
            let peer = avp::find_u16(avps, A_ASSIGNED_SESSION_ID);
            self.calls
                .iter()
                .find(|(_, c)| Some(c.peer) == peer)
                .map(|(l, _)| *l)
        };
        let Some(local) = local else { return Ok(()) };
        self.calls.remove(&local);
        let why =
            avp::find(avps, A_RESULT_CODE).map_or_else(|| "no result code".into(), result_text);
        self.events.push_back(TunnelEvent::SessionClosed {
            session: local,
            reason: format!("the client hung up ({why})"),
        });
        Ok(())
    }

    fn close_session_err(
        &mut self,
        now: Instant,
        session: u16,
        result: u16,
        error: u16,
        msg: &str,
    ) {
        let Some(call) = self.calls.remove(&session) else {
            return;
        };
        let mut w = self.writer(CDN);
        w.result(result, error, msg)
            .u16(A_ASSIGNED_SESSION_ID, session);
        let b = w.out;
        self.chan.send(now, call.peer, b);
        self.events.push_back(TunnelEvent::SessionClosed {
            session,
            reason: msg.to_string(),
        });
    }

    /// Ends one call (CDN to the peer), e.g. its PPP link is over or `kill`.
    pub fn close_session(&mut self, now: Instant, session: u16, msg: &str) {
        if let Some(call) = self.calls.remove(&session) {
            let mut w = self.writer(CDN);
            w.result(CDN_ADMIN, ERR_NONE, msg)
                .u16(A_ASSIGNED_SESSION_ID, session);
            let b = w.out;
            self.chan.send(now, call.peer, b);
        }
        self.after(now);
    }

    /// Ends the tunnel (StopCCN), e.g. at shutdown or its last session gone.
    pub fn close(&mut self, now: Instant, msg: &str) {
        self.stop(now, STOP_CLEAR, ERR_NONE, msg);
        self.after(now);
    }

    /// Refuses a new tunnel: its SCCRQ acknowledged, answered with StopCCN.
    pub fn refuse(&mut self, now: Instant, sccrq: &[u8], result: u16, error: u16, msg: &str) {
        if let Ok(h) = Header::decode(sccrq) {
            if let Some(body) = sccrq.get(h.payload_at..h.end) {
                self.chan.receive(now, &h, body);
                while self.chan.poll_delivered().is_some() {}
            }
        }
        self.stop(now, result, error, msg);
        self.after(now);
    }

    /// Shutdown variant of `close`.
    pub fn shut_down(&mut self, now: Instant) {
        self.stop(
            now,
            STOP_SHUTTING_DOWN,
            ERR_NONE,
            "the gateway is shutting down",
        );
    }

    fn stop(&mut self, now: Instant, result: u16, error: u16, msg: &str) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        let local_id = self.local_id;
        let mut w = self.writer(STOPCCN);
        w.hidden(A_ASSIGNED_TUNNEL_ID, &local_id.to_be_bytes())
            .result(result, error, msg);
        let b = w.out;
        self.chan.send(now, 0, b);
        self.state = State::Closing;
        self.calls.clear();
        self.events.push_back(TunnelEvent::Closed {
            reason: msg.to_string(),
        });
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = self.hello_due.filter(|_| self.state == State::Established);
        [self.chan.poll_timeout(), hello]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.chan.handle_timeout(now);
        if self.chan.failed() {
            if !matches!(self.state, State::Closing | State::Closed) {
                self.events.push_back(TunnelEvent::Closed {
                    reason: "the client stopped acknowledging control messages".into(),
                });
            }
            self.calls.clear();
            self.state = State::Closed;
            return;
        }
        if self.state == State::Established && self.hello_due.is_some_and(|t| now >= t) {
            // Anything unacknowledged already tests the peer's liveness.
            if self.chan.idle() {
                let b = self.writer(HELLO).out;
                self.chan.send(now, 0, b);
            }
            self.hello_due = Some(now + self.cfg.hello_interval);
        }
        self.after(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.chan.poll_transmit()
    }

    pub fn poll(&mut self) -> Option<TunnelEvent> {
        self.events.pop_front()
    }
}
