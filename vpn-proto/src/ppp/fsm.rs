//! The RFC 1661 §4 option-negotiation automaton, shared by LCP, IPCP and
//! CCP. The protocol-specific part (which options, what to accept) is an
//! `Options` implementation; this file is only the state table, the restart
//! timer and the Max-Configure / Max-Terminate / Max-Failure counters.
use std::{collections::VecDeque, time::Instant};

use super::consts::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initial,
    Starting,
    Closed,
    Stopped,
    Closing,
    Stopping,
    ReqSent,
    AckRcvd,
    AckSent,
    Opened,
}

/// What to answer to the peer's Configure-Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    /// Options with the values we would accept instead.
    Nak(Vec<u8>),
    /// Options we do not accept at all.
    Reject(Vec<u8>),
}

/// The protocol-specific half of a control protocol.
pub trait Options {
    /// The options of our next Configure-Request.
    fn request(&mut self) -> Vec<u8>;
    /// Judges the peer's request. `must_reject`: Max-Failure is reached, so
    /// what would be a Nak becomes a Reject (the peer is not converging).
    fn check(&mut self, opts: &[u8], must_reject: bool) -> Verdict;
    /// The peer acked our request (already checked to match it).
    fn acked(&mut self, _opts: &[u8]) {}
    /// The peer suggested other values; false if none of them will do.
    fn naked(&mut self, opts: &[u8]) -> bool;
    /// The peer rejected options; false if we cannot do without them.
    fn rejected(&mut self, opts: &[u8]) -> bool;
    /// Negotiation (re)starts: forget what the peer asked for before.
    fn reset(&mut self) {}
}

/// This-Layer-Up/Down/Started/Finished (RFC 1661 §4.4), for the layer above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerEvent {
    Up,
    Down,
    Started,
    Finished,
}

/// Iterates the options of a Configure packet: (type, value).
pub fn options(mut b: &[u8]) -> impl Iterator<Item = Option<(u8, &[u8])>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        if b.len() < 2 || b[1] < 2 || b.len() < b[1] as usize {
            b = &[];
            return Some(None); // malformed: the caller rejects the packet
        }
        let (t, l) = (b[0], b[1] as usize);
        let v = &b[2..l];
        b = &b[l..];
        Some(Some((t, v)))
    })
}

pub fn put_option(out: &mut Vec<u8>, t: u8, v: &[u8]) {
    out.push(t);
    out.push((v.len() + 2) as u8);
    out.extend_from_slice(v);
}

/// code, id, length, data.
pub fn packet(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![code, id];
    p.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// Splits a control packet into (code, id, data), checking its length field.
pub fn parse(p: &[u8]) -> Option<(u8, u8, &[u8])> {
    if p.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([p[2], p[3]]) as usize;
    if len < 4 || len > p.len() {
        return None;
    }
    Some((p[0], p[1], &p[4..len]))
}

pub struct Fsm<O> {
    pub opts: O,
    state: State,
    /// Identifier of our outstanding request.
    id: u8,
    next_id: u8,
    last_request: Vec<u8>,
    restart_count: u32,
    failure_count: u32,
    timer: Option<Instant>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LayerEvent>,
}

impl<O: Options> Fsm<O> {
    pub fn new(opts: O) -> Fsm<O> {
        Fsm {
            opts,
            state: State::Initial,
            id: 0,
            next_id: 1,
            last_request: Vec::new(),
            restart_count: 0,
            failure_count: MAX_FAILURE,
            timer: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// An automaton in Opened whose next request uses `next_id` (a
    /// restart's successor resumes a link that is up).
    pub fn opened(opts: O, next_id: u8) -> Fsm<O> {
        Fsm {
            state: State::Opened,
            next_id,
            ..Fsm::new(opts)
        }
    }

    /// The identifier the next request or echo will use.
    pub fn next_id(&self) -> u8 {
        self.next_id
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Opened
    }

    /// Terminating: a Terminate-Request out and its restart timer running
    /// (`Closing`), or the peer's acknowledged and a restart interval
    /// left for the acknowledgement to arrive (`Stopping`).
    pub fn is_terminating(&self) -> bool {
        matches!(self.state, State::Closing | State::Stopping)
    }

    /// A packet to send (code, id, length, data), without the protocol field.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll(&mut self) -> Option<LayerEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    // ---- actions ----
    fn irc(&mut self, configure: bool) {
        self.restart_count = if configure {
            MAX_CONFIGURE
        } else {
            MAX_TERMINATE
        };
        self.failure_count = MAX_FAILURE;
    }
    fn zrc(&mut self, now: Instant) {
        self.restart_count = 0;
        self.timer = Some(now + RESTART_INTERVAL);
    }
    fn scr(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        self.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.last_request = self.opts.request();
        self.out
            .push_back(packet(CONF_REQ, self.id, &self.last_request));
        self.timer = Some(now + RESTART_INTERVAL);
    }
    fn str_(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.out.push_back(packet(TERM_REQ, id, &[]));
        self.timer = Some(now + RESTART_INTERVAL);
    }
    fn sta(&mut self, id: u8) {
        self.out.push_back(packet(TERM_ACK, id, &[]));
    }
    fn answer(&mut self, id: u8, opts: &[u8], v: &Verdict) {
        match v {
            Verdict::Ack => self.out.push_back(packet(CONF_ACK, id, opts)),
            Verdict::Nak(o) => {
                self.failure_count = self.failure_count.saturating_sub(1);
                self.out.push_back(packet(CONF_NAK, id, o));
            }
            Verdict::Reject(o) => self.out.push_back(packet(CONF_REJ, id, o)),
        }
    }
    fn tlu(&mut self) {
        self.timer = None;
        self.events.push_back(LayerEvent::Up);
    }
    fn tld(&mut self) {
        self.events.push_back(LayerEvent::Down);
    }
    fn tls(&mut self) {
        self.opts.reset();
        self.events.push_back(LayerEvent::Started);
    }
    fn tlf(&mut self) {
        self.timer = None;
        self.events.push_back(LayerEvent::Finished);
    }

    // ---- administrative and lower-layer events ----

    pub fn up(&mut self, now: Instant) {
        match self.state {
            State::Initial => self.state = State::Closed,
            State::Starting => {
                self.irc(true);
                self.scr(now);
                self.state = State::ReqSent;
            }
            _ => {}
        }
    }

    pub fn down(&mut self) {
        self.timer = None;
        self.state = match self.state {
            State::Closed | State::Closing => State::Initial,
            State::Stopped => {
                self.tls();
                State::Starting
            }
            State::Opened => {
                self.tld();
                State::Starting
            }
            State::Initial => State::Initial,
            _ => State::Starting,
        };
    }

    pub fn open(&mut self, now: Instant) {
        match self.state {
            State::Initial => {
                self.tls();
                self.state = State::Starting;
            }
            State::Closed => {
                self.irc(true);
                self.scr(now);
                self.state = State::ReqSent;
            }
            State::Closing => self.state = State::Stopping,
            _ => {}
        }
    }

    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Starting => {
                self.tlf();
                self.state = State::Initial;
            }
            State::Stopped => self.state = State::Closed,
            State::Stopping => self.state = State::Closing,
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.irc(false);
                self.str_(now);
                self.state = State::Closing;
            }
            State::Opened => {
                self.tld();
                self.irc(false);
                self.str_(now);
                self.state = State::Closing;
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_none_or(|t| now < t) {
            return;
        }
        self.timer = None;
        if self.restart_count > 0 {
            match self.state {
                State::Closing | State::Stopping => self.str_(now),
                State::ReqSent | State::AckRcvd => {
                    self.scr(now);
                    self.state = State::ReqSent;
                }
                State::AckSent => self.scr(now),
                _ => {}
            }
        } else {
            self.state = match self.state {
                State::Closing => {
                    self.tlf();
                    State::Closed
                }
                State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                    self.tlf();
                    State::Stopped
                }
                s => s,
            };
        }
    }

    // ---- packets from the peer ----

    /// Handles a received packet. Returns the codes this automaton does not
    /// know (8-11, 14-15) to the caller as `Err((code, id, data))`.
    pub fn handle_packet<'a>(
        &mut self,
        now: Instant,
        p: &'a [u8],
    ) -> Result<(), (u8, u8, &'a [u8])> {
        let Some((code, id, data)) = parse(p) else {
            return Ok(()); // silently discarded (RFC 1661 §5)
        };
        match code {
            CONF_REQ => self.rcr(now, id, data),
            CONF_ACK => {
                if id == self.id && data == self.last_request.as_slice() {
                    self.rca(now);
                }
            }
            CONF_NAK | CONF_REJ => {
                if id == self.id {
                    let ok = if code == CONF_NAK {
                        self.opts.naked(data)
                    } else {
                        self.opts.rejected(data)
                    };
                    if ok {
                        self.rcn(now);
                    } else {
                        self.close(now);
                    }
                }
            }
            TERM_REQ => self.rtr(now, id),
            TERM_ACK => self.rta(now),
            CODE_REJ => {
                // Only a reject of a code we need would be fatal; ours are all basic.
                if self.state == State::AckRcvd {
                    self.state = State::ReqSent;
                }
            }
            _ => return Err((code, id, data)),
        }
        Ok(())
    }

    fn rcr(&mut self, now: Instant, id: u8, data: &[u8]) {
        match self.state {
            State::Closed => self.sta(id),
            State::Closing | State::Stopping | State::Initial | State::Starting => {}
            _ => {
                let must_reject = self.failure_count == 0;
                let v = self.opts.check(data, must_reject);
                let good = v == Verdict::Ack;
                match self.state {
                    State::Stopped => {
                        self.irc(true);
                        self.scr(now);
                        self.answer(id, data, &v);
                        self.state = if good { State::AckSent } else { State::ReqSent };
                    }
                    State::ReqSent | State::AckSent => {
                        self.answer(id, data, &v);
                        self.state = if good { State::AckSent } else { State::ReqSent };
                    }
                    State::AckRcvd => {
                        self.answer(id, data, &v);
                        if good {
                            self.tlu();
                            self.state = State::Opened;
                        }
                    }
                    State::Opened => {
                        self.tld();
                        self.scr(now);
                        self.answer(id, data, &v);
                        self.state = if good { State::AckSent } else { State::ReqSent };
                    }
                    _ => {}
                }
            }
        }
    }

    fn rca(&mut self, now: Instant) {
        let req = self.last_request.clone();
        match self.state {
            State::ReqSent => {
                self.opts.acked(&req);
                self.irc(true);
                self.state = State::AckRcvd;
            }
            State::AckRcvd => {
                self.scr(now);
                self.state = State::ReqSent;
            }
            State::AckSent => {
                self.opts.acked(&req);
                self.irc(true);
                self.tlu();
                self.state = State::Opened;
            }
            State::Opened => {
                self.tld();
                self.scr(now);
                self.state = State::ReqSent;
            }
            _ => {}
        }
    }

    fn rcn(&mut self, now: Instant) {
        match self.state {
            State::ReqSent | State::AckSent => {
                self.irc(true);
                self.scr(now);
            }
            State::AckRcvd => {
                self.scr(now);
                self.state = State::ReqSent;
            }
            State::Opened => {
                self.tld();
                self.scr(now);
                self.state = State::ReqSent;
            }
            _ => {}
        }
    }

    fn rtr(&mut self, now: Instant, id: u8) {
        match self.state {
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.sta(id);
                self.state = State::ReqSent;
            }
            State::Opened => {
                self.tld();
                self.zrc(now);
                self.sta(id);
                self.state = State::Stopping;
            }
            State::Initial | State::Starting => {}
            _ => self.sta(id),
        }
    }

    fn rta(&mut self, now: Instant) {
        match self.state {
            State::Closing => {
                self.tlf();
                self.state = State::Closed;
            }
            State::Stopping => {
                self.tlf();
                self.state = State::Stopped;
            }
            State::AckRcvd => self.state = State::ReqSent,
            State::Opened => {
                self.tld();
                self.scr(now);
                self.state = State::ReqSent;
            }
            _ => {}
        }
    }

    /// Sends a Code-Reject for a packet with an unknown code.
    pub fn code_reject(&mut self, rejected: &[u8]) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let keep = rejected.len().min(1400);
        self.out.push_back(packet(CODE_REJ, id, &rejected[..keep]));
    }

    /// Queues an extra packet of this protocol (echo replies, protocol rejects).
    pub fn send_raw(&mut self, p: Vec<u8>) {
        self.out.push_back(p);
    }

    pub fn fresh_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }
}

/// Drives two automata against each other over a perfect channel.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Instant;

    use super::{Fsm, Options};

    /// Administrative Open plus lower layer Up.
    pub fn start<O: Options>(f: &mut Fsm<O>, now: Instant) {
        f.open(now);
        f.up(now);
    }

    /// Starts both and delivers packets both ways until neither has any.
    pub fn converse<A: Options, B: Options>(a: &mut Fsm<A>, b: &mut Fsm<B>, now: Instant) {
        start(a, now);
        start(b, now);
        for _ in 0..20 {
            while let Some(p) = a.poll_transmit() {
                let _ = b.handle_packet(now, &p);
            }
            while let Some(p) = b.poll_transmit() {
                let _ = a.handle_packet(now, &p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One option (type 1, one byte). `want` is what we ask for; we accept
    /// from the peer only values in `accept`, nak'ing with the first of them.
    struct Byte {
        want: u8,
        accept: Vec<u8>,
        agreed: Option<u8>,
    }

    impl Options for Byte {
        fn request(&mut self) -> Vec<u8> {
            let mut o = Vec::new();
            put_option(&mut o, 1, &[self.want]);
            o
        }
        fn check(&mut self, opts: &[u8], must_reject: bool) -> Verdict {
            let v = options(opts).next().flatten().map(|(_, v)| v[0]);
            match v {
                Some(v) if self.accept.contains(&v) => {
                    self.agreed = Some(v);
                    Verdict::Ack
                }
                _ if must_reject => Verdict::Reject(opts.to_vec()),
                _ => {
                    let mut o = Vec::new();
                    put_option(&mut o, 1, &[self.accept[0]]);
                    Verdict::Nak(o)
                }
            }
        }
        fn naked(&mut self, opts: &[u8]) -> bool {
            if let Some(Some((_, v))) = options(opts).next() {
                self.want = v[0];
            }
            true
        }
        fn rejected(&mut self, _: &[u8]) -> bool {
            false
        }
    }

    fn fsm(want: u8, accept: &[u8]) -> Fsm<Byte> {
        Fsm::new(Byte {
            want,
            accept: accept.to_vec(),
            agreed: None,
        })
    }

    /// Delivers queued packets both ways until quiet; `lose(n)` drops the nth packet.
    fn exchange(
        a: &mut Fsm<Byte>,
        b: &mut Fsm<Byte>,
        now: Instant,
        lose: &mut dyn FnMut(usize) -> bool,
    ) {
        let mut n = 0;
        loop {
            let mut moved = false;
            while let Some(p) = a.poll_transmit() {
                n += 1;
                moved = true;
                if !lose(n) {
                    let _ = b.handle_packet(now, &p);
                }
            }
            while let Some(p) = b.poll_transmit() {
                n += 1;
                moved = true;
                if !lose(n) {
                    let _ = a.handle_packet(now, &p);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn start(a: &mut Fsm<Byte>, now: Instant) {
        a.open(now);
        a.up(now);
    }

    #[test]
    fn both_sides_open_and_agree() {
        let now = Instant::now();
        let (mut a, mut b) = (fsm(7, &[7, 9]), fsm(9, &[7, 9]));
        start(&mut a, now);
        start(&mut b, now);
        exchange(&mut a, &mut b, now, &mut |_| false);
        assert!(a.is_open() && b.is_open());
        assert_eq!(a.poll(), Some(LayerEvent::Started));
        assert_eq!(a.poll(), Some(LayerEvent::Up));
        assert_eq!((a.opts.agreed, b.opts.agreed), (Some(9), Some(7)));
    }

    #[test]
    fn nak_converges_on_an_acceptable_value() {
        let now = Instant::now();
        // a wants 3, b only takes 5: b naks with 5 and a switches.
        let (mut a, mut b) = (fsm(3, &[1]), fsm(1, &[5]));
        start(&mut a, now);
        start(&mut b, now);
        exchange(&mut a, &mut b, now, &mut |_| false);
        assert!(a.is_open() && b.is_open());
        assert_eq!(b.opts.agreed, Some(5));
    }

    #[test]
    fn lost_packets_are_recovered_by_the_restart_timer() {
        let mut now = Instant::now();
        let (mut a, mut b) = (fsm(7, &[7, 9]), fsm(9, &[7, 9]));
        start(&mut a, now);
        start(&mut b, now);
        // Lose every other packet, and duplicate nothing: timers retransmit.
        let mut round = 0;
        while !(a.is_open() && b.is_open()) {
            round += 1;
            assert!(
                round < 20,
                "no convergence: {:?} {:?}",
                a.state(),
                b.state()
            );
            exchange(&mut a, &mut b, now, &mut |n| n % 2 == 1 && round < 4);
            now += RESTART_INTERVAL + Duration::from_millis(1);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }

    #[test]
    fn duplicated_and_reordered_packets_still_end_opened() {
        let mut now = Instant::now();
        let (mut a, mut b) = (fsm(7, &[7, 9]), fsm(9, &[7, 9]));
        start(&mut a, now);
        start(&mut b, now);
        // Every packet twice, each batch in reverse order, for a while.
        for _ in 0..6 {
            let pa: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
            let pb: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
            for p in pa.iter().rev().chain(pa.iter()) {
                let _ = b.handle_packet(now, p);
            }
            for p in pb.iter().rev().chain(pb.iter()) {
                let _ = a.handle_packet(now, p);
            }
        }
        // Then a clean channel: whatever state the duplicates left, both end open.
        for _ in 0..20 {
            if a.is_open() && b.is_open() {
                break;
            }
            exchange(&mut a, &mut b, now, &mut |_| false);
            now += RESTART_INTERVAL;
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
        exchange(&mut a, &mut b, now, &mut |_| false);
        assert!(
            a.is_open() && b.is_open(),
            "{:?} {:?}",
            a.state(),
            b.state()
        );
        assert_eq!((a.opts.agreed, b.opts.agreed), (Some(9), Some(7)));
    }

    #[test]
    fn a_silent_peer_exhausts_max_configure() {
        let mut now = Instant::now();
        let mut a = fsm(7, &[7]);
        start(&mut a, now);
        let mut sent = 0;
        while a.state() == State::ReqSent {
            while a.poll_transmit().is_some() {
                sent += 1;
            }
            now += RESTART_INTERVAL;
            a.handle_timeout(now);
        }
        assert_eq!(sent, MAX_CONFIGURE as usize);
        assert_eq!(a.state(), State::Stopped);
        assert!(std::iter::from_fn(|| a.poll()).any(|e| e == LayerEvent::Finished));
    }

    #[test]
    fn a_peer_that_never_converges_gets_rejected_after_max_failure() {
        let now = Instant::now();
        let mut b = fsm(1, &[5]);
        start(&mut b, now);
        let mut naks = 0;
        for id in 0..20u8 {
            let mut o = Vec::new();
            put_option(&mut o, 1, &[3]);
            let _ = b.handle_packet(now, &packet(CONF_REQ, id, &o));
            while let Some(p) = b.poll_transmit() {
                match p[0] {
                    CONF_NAK => naks += 1,
                    CONF_REJ => {
                        assert_eq!(naks, MAX_FAILURE);
                        return;
                    }
                    _ => {}
                }
            }
        }
        panic!("never rejected");
    }

    #[test]
    fn terminate_from_the_peer_and_from_us() {
        let now = Instant::now();
        let (mut a, mut b) = (fsm(7, &[7, 9]), fsm(9, &[7, 9]));
        start(&mut a, now);
        start(&mut b, now);
        exchange(&mut a, &mut b, now, &mut |_| false);
        a.close(now);
        exchange(&mut a, &mut b, now, &mut |_| false);
        assert_eq!(a.state(), State::Closed);
        assert_eq!(b.state(), State::Stopping);
        assert!(std::iter::from_fn(|| b.poll()).any(|e| e == LayerEvent::Down));
    }

    #[test]
    fn malformed_and_unknown_packets() {
        let now = Instant::now();
        let mut a = fsm(7, &[7]);
        start(&mut a, now);
        while a.poll_transmit().is_some() {}
        for bad in [&[][..], &[1, 1, 0], &[1, 1, 0, 99], &[1, 1, 0, 2]] {
            assert!(a.handle_packet(now, bad).is_ok(), "discarded");
        }
        assert!(a.poll_transmit().is_none());
        let unknown = packet(42, 1, b"x");
        assert_eq!(a.handle_packet(now, &unknown), Err((42, 1, &b"x"[..])));
    }
}
