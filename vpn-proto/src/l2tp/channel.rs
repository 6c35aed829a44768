//! The reliable control channel of one tunnel (RFC 2661 §5.8): Ns/Nr in
//! 16-bit serial arithmetic, the peer's receive window, retransmission with
//! exponential back-off and a give-up limit, ZLB acknowledgements, and
//! in-order delivery (duplicates dropped and acknowledged again).
use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use super::header::Header;

pub const FIRST_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(8);
/// Retransmissions of one message before the tunnel is given up.
pub const MAX_RETRIES: u32 = 5;
/// Our receive window (Receive Window Size AVP) and the out-of-order
/// messages we hold.
pub const RECV_WINDOW: u16 = 16;
/// The peer's window when it sends no Receive Window Size AVP.
pub const DEFAULT_PEER_WINDOW: u16 = 4;

/// `a` comes before `b` in 16-bit serial arithmetic.
fn before(a: u16, b: u16) -> bool {
    (b.wrapping_sub(a) as i16) > 0
}

/// A channel's state as plain data (`Channel::carry`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelCarry {
    pub peer_tunnel: u16,
    pub ns_next: u16,
    pub nr: u16,
    pub peer_window: u16,
    /// (Ns, body) sent and not acknowledged yet.
    pub unacked: Vec<(u16, Vec<u8>)>,
    /// Queued behind the peer's window.
    pub waiting: Vec<(u16, Vec<u8>)>,
}

struct Unacked {
    ns: u16,
    body: Vec<u8>,
    due: Instant,
    timeout: Duration,
    tries: u32,
}

/// What a received control message turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// New, in order (bodies ready in `poll_delivered`).
    Accepted,
    /// A duplicate, or ahead of what we expect: acknowledged, not delivered.
    Duplicate,
    /// A ZLB acknowledgement.
    Ack,
    /// Ns far outside our window.
    OutOfWindow,
}

pub struct Channel {
    /// Our tunnel ID in the peer's numbering, for headers.
    pub peer_tunnel: u16,
    ns_next: u16,
    nr: u16,
    peer_window: u16,
    unacked: VecDeque<Unacked>,
    waiting: VecDeque<(u16, Vec<u8>)>,
    early: BTreeMap<u16, Vec<u8>>,
    delivered: VecDeque<Vec<u8>>,
    out: VecDeque<Vec<u8>>,
    ack_owed: bool,
    failed: bool,
}

impl Channel {
    pub fn new(peer_tunnel: u16, peer_window: Option<u16>) -> Channel {
        Channel {
            peer_tunnel,
            ns_next: 0,
            nr: 0,
            peer_window: peer_window
                .filter(|w| *w > 0)
                .unwrap_or(DEFAULT_PEER_WINDOW),
            unacked: VecDeque::new(),
            waiting: VecDeque::new(),
            early: BTreeMap::new(),
            delivered: VecDeque::new(),
            out: VecDeque::new(),
            ack_owed: false,
            failed: false,
        }
    }

    /// Retransmission gave up: the tunnel is dead.
    /// The sequence state and what the peer has not acknowledged (a
    /// restart hands it over; the bodies are sent again from there).
    pub fn carry(&self) -> ChannelCarry {
        ChannelCarry {
            peer_tunnel: self.peer_tunnel,
            ns_next: self.ns_next,
            nr: self.nr,
            peer_window: self.peer_window,
            unacked: self
                .unacked
                .iter()
                .map(|u| (u.ns, u.body.clone()))
                .collect(),
            waiting: self.waiting.iter().cloned().collect(),
        }
    }

    /// The channel `carry` described; unacknowledged messages are due
    /// again after the first timeout.
    pub fn resume(c: &ChannelCarry, now: Instant) -> Channel {
        let mut chan = Channel::new(c.peer_tunnel, Some(c.peer_window));
        chan.ns_next = c.ns_next;
        chan.nr = c.nr;
        chan.unacked = c
            .unacked
            .iter()
            .map(|(ns, body)| Unacked {
                ns: *ns,
                body: body.clone(),
                due: now + FIRST_TIMEOUT,
                timeout: FIRST_TIMEOUT,
                tries: 0,
            })
            .collect();
        chan.waiting = c.waiting.iter().cloned().collect();
        chan
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Nothing of ours is waiting for an acknowledgement.
    pub fn idle(&self) -> bool {
        self.unacked.is_empty() && self.waiting.is_empty()
    }

    /// A received control message (header already decoded). Its body, if
    /// new and in order, comes out of `poll_delivered`.
    pub fn receive(&mut self, now: Instant, h: &Header, body: &[u8]) -> Received {
        let Some((ns, nr)) = h.seq else {
            return Received::OutOfWindow;
        };
        self.acked(now, nr);
        if body.is_empty() {
            return Received::Ack;
        }
        if ns == self.nr {
            self.nr = self.nr.wrapping_add(1);
            self.delivered.push_back(body.to_vec());
            while let Some(b) = self.early.remove(&self.nr) {
                self.nr = self.nr.wrapping_add(1);
                self.delivered.push_back(b);
            }
            self.ack_owed = true;
            Received::Accepted
        } else if before(ns, self.nr) {
            self.ack_owed = true; // our ack was lost: say it again
            Received::Duplicate
        } else if ns.wrapping_sub(self.nr) < RECV_WINDOW {
            self.early.insert(ns, body.to_vec());
            self.ack_owed = true;
            Received::Duplicate
        } else {
            Received::OutOfWindow
        }
    }

    pub fn poll_delivered(&mut self) -> Option<Vec<u8>> {
        self.delivered.pop_front()
    }

    /// Everything before `nr` arrived at the peer.
    fn acked(&mut self, now: Instant, nr: u16) {
        while self.unacked.front().is_some_and(|u| before(u.ns, nr)) {
            self.unacked.pop_front();
        }
        self.fill_window(now);
    }

    /// Queues a control message (its body: AVPs) for `session` (0: tunnel).
    pub fn send(&mut self, now: Instant, session: u16, body: Vec<u8>) {
        self.waiting.push_back((session, body));
        self.fill_window(now);
    }

    fn fill_window(&mut self, now: Instant) {
        while self.unacked.len() < usize::from(self.peer_window) {
            let Some((session, body)) = self.waiting.pop_front() else {
                break;
            };
            let ns = self.ns_next;
            self.ns_next = ns.wrapping_add(1);
            let mut msg = Vec::with_capacity(12 + body.len());
            Header::encode_control(&mut msg, self.peer_tunnel, session, ns, 0, body.len());
            msg.extend_from_slice(&body);
            self.unacked.push_back(Unacked {
                ns,
                body: msg,
                due: now + FIRST_TIMEOUT,
                timeout: FIRST_TIMEOUT,
                tries: 0,
            });
            self.transmit_last();
        }
    }

    /// Stamps the current Nr into a queued message and sends it.
    fn transmit_last(&mut self) {
        if let Some(u) = self.unacked.back() {
            let mut m = u.body.clone();
            m[10..12].copy_from_slice(&self.nr.to_be_bytes());
            self.out.push_back(m);
            self.ack_owed = false;
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.unacked.iter().map(|u| u.due).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let nr = self.nr;
        let mut resend = Vec::new();
        for u in self.unacked.iter_mut().filter(|u| u.due <= now) {
            if u.tries >= MAX_RETRIES {
                self.failed = true;
                return;
            }
            u.tries += 1;
            u.timeout = (u.timeout * 2).min(MAX_TIMEOUT);
            u.due = now + u.timeout;
            let mut m = u.body.clone();
            m[10..12].copy_from_slice(&nr.to_be_bytes());
            resend.push(m);
        }
        if !resend.is_empty() {
            self.ack_owed = false;
        }
        self.out.extend(resend);
    }

    /// Datagrams to send: messages, then a ZLB if an acknowledgement is
    /// owed and nothing else carried it.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(m) = self.out.pop_front() {
            return Some(m);
        }
        if std::mem::take(&mut self.ack_owed) {
            let mut zlb = Vec::with_capacity(12);
            Header::encode_control(&mut zlb, self.peer_tunnel, 0, self.ns_next, self.nr, 0);
            return Some(zlb);
        }
        None
    }
}
