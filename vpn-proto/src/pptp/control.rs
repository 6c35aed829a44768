//! One PPTP control connection, the PAC's side (RFC 2637 §2-3), sans-IO:
//! bytes in, messages out, call events for the gateway, timers for the
//! set-up deadline and the echo keepalive.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::messages::{self as m, Message, PptpError};

/// A new control connection must set up a call within this time.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Echo-Request after this much silence; the connection ends if unanswered.
pub const ECHO_IDLE: Duration = Duration::from_secs(60);
/// Our receive window, announced in OCRP.
pub const RECV_WINDOW: u16 = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// The client asks for a call: answer with `accept_call` (our call ID).
    CallRequested { peer_call_id: u16 },
    /// The client cleared one of its calls (we already sent the CDN).
    CallCleared { call_id: u16 },
    /// A message type a PAC does not handle: ignored, worth a counter.
    Ignored { kind: u16 },
    /// The connection is over (StopCCRQ/StopCCRP exchanged).
    Stopped,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("{0}")]
    Wire(#[from] PptpError),
    #[error("unsupported PPTP version {0:#06x}")]
    Version(u16),
    #[error("{0} before Start-Control-Connection")]
    NotStarted(&'static str),
    #[error("no call set up within {0:?}")]
    SetupTimeout(Duration),
    #[error("no answer to our Echo-Request")]
    EchoTimeout,
}

/// A started control connection as plain data (a restart hands it over).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlCarry {
    pub echo_id: u32,
    /// (our call ID, the client's call ID).
    pub calls: Vec<(u16, u16)>,
    /// Bytes of a message not complete yet.
    pub buf: Vec<u8>,
}

pub struct ControlConnection {
    started: bool,
    stopped: bool,
    opened_at: Instant,
    last_rx: Instant,
    echo_sent: Option<u32>,
    echo_id: u32,
    /// (our call ID, the client's call ID) of live calls.
    calls: Vec<(u16, u16)>,
    buf: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ControlEvent>,
}

impl ControlConnection {
    pub fn new(now: Instant, echo_seed: u32) -> ControlConnection {
        ControlConnection {
            started: false,
            stopped: false,
            opened_at: now,
            last_rx: now,
            echo_sent: None,
            echo_id: echo_seed,
            calls: Vec::new(),
            buf: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The connection's state if it is started and not stopping (nothing
    /// queued to send), else None.
    pub fn carry(&self) -> Option<ControlCarry> {
        (self.started && !self.stopped && self.out.is_empty()).then(|| ControlCarry {
            echo_id: self.echo_id,
            calls: self.calls.clone(),
            buf: self.buf.clone(),
        })
    }

    /// The connection `carry` described; its echo timer starts now.
    pub fn resume(c: &ControlCarry, now: Instant) -> ControlConnection {
        ControlConnection {
            started: true,
            calls: c.calls.clone(),
            buf: c.buf.clone(),
            ..ControlConnection::new(now, c.echo_id)
        }
    }

    /// Bytes from the TCP stream. An error means: close the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ControlError> {
        self.last_rx = now;
        self.echo_sent = None;
        self.buf.extend_from_slice(bytes);
        while let Some(msg) = m::take(&mut self.buf)? {
            let msg = m::parse(&msg)?;
            self.handle(msg)?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: Message) -> Result<(), ControlError> {
        match msg {
            Message::Sccrq { version } => {
                if version != m::VERSION {
                    self.out.push_back(m::sccrp(5, "vpn-ctl"));
                    return Err(ControlError::Version(version));
                }
                self.out.push_back(m::sccrp(m::RESULT_OK, "vpn-ctl"));
                self.started = true;
            }
            Message::Ocrq { call_id, .. } => {
                if !self.started {
                    return Err(ControlError::NotStarted("OCRQ"));
                }
                self.events.push_back(ControlEvent::CallRequested {
                    peer_call_id: call_id,
                });
            }
            Message::EchoRq { id } => self.out.push_back(m::echo_rp(id)),
            Message::Ccrq { call_id } => {
                // The client names the call by its own call ID.
                if let Some(i) = self.calls.iter().position(|(_, p)| *p == call_id) {
                    let (ours, _) = self.calls.remove(i);
                    self.out.push_back(m::cdn(ours, m::RESULT_OK));
                    self.events
                        .push_back(ControlEvent::CallCleared { call_id: ours });
                }
            }
            Message::StopCcrq => {
                self.out.push_back(m::stop_ccrp());
                self.stop_now();
            }
            Message::StopCcrp => self.stop_now(),
            Message::EchoRp { .. } | Message::Sli { .. } | Message::Wen | Message::Cdn { .. } => {}
            Message::Other(kind) => self.events.push_back(ControlEvent::Ignored { kind }),
        }
        Ok(())
    }

    fn stop_now(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.events.push_back(ControlEvent::Stopped);
        }
    }

    /// Accepts a requested call under `call_id` (unique across the gateway).
    pub fn accept_call(&mut self, call_id: u16, peer_call_id: u16) {
        self.calls.push((call_id, peer_call_id));
        self.out
            .push_back(m::ocrp(call_id, peer_call_id, m::RESULT_OK, RECV_WINDOW));
    }

    /// Refuses a requested call (OCRP with `result`: busy, do not accept).
    pub fn refuse_call(&mut self, peer_call_id: u16, result: u8) {
        self.out
            .push_back(m::ocrp(0, peer_call_id, result, RECV_WINDOW));
    }

    /// Ends one of our calls (kill, link down); the last one also stops the
    /// connection, as pptpd does.
    pub fn clear_call(&mut self, call_id: u16) {
        if let Some(i) = self.calls.iter().position(|(c, _)| *c == call_id) {
            self.calls.remove(i);
            self.out.push_back(m::cdn(call_id, m::CDN_ADMIN));
            if self.calls.is_empty() {
                self.out.push_back(m::stop_ccrq(1));
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ControlError> {
        if self.calls.is_empty() && now.saturating_duration_since(self.opened_at) > SETUP_TIMEOUT {
            return Err(ControlError::SetupTimeout(SETUP_TIMEOUT));
        }
        if now.saturating_duration_since(self.last_rx) > ECHO_IDLE {
            if self.echo_sent.is_some() {
                return Err(ControlError::EchoTimeout);
            }
            self.echo_id = self.echo_id.wrapping_add(1);
            self.echo_sent = Some(self.echo_id);
            self.out.push_back(m::echo_rq(self.echo_id));
            self.last_rx = now;
        }
        Ok(())
    }

    pub fn poll_timeout(&self) -> Instant {
        let echo = self.last_rx + ECHO_IDLE + Duration::from_millis(1);
        if self.calls.is_empty() {
            echo.min(self.opened_at + SETUP_TIMEOUT + Duration::from_millis(1))
        } else {
            echo
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll(&mut self) -> Option<ControlEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sccrq(version: u16) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        body.resize(144, 0);
        raw(1, &body)
    }

    fn raw(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = ((12 + body.len()) as u16).to_be_bytes().to_vec();
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&m::MAGIC_COOKIE.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(body);
        v
    }

    fn ocrq(peer_call: u16) -> Vec<u8> {
        m::ocrq(peer_call, 0, 0)
    }

    fn kinds(c: &mut ControlConnection) -> Vec<u16> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|p| u16::from_be_bytes([p[8], p[9]]))
            .collect()
    }

    #[test]
    fn a_call_from_start_to_clear() {
        let now = Instant::now();
        let mut c = ControlConnection::new(now, 0);
        // Split anywhere: TCP gives no message boundaries.
        let stream = [sccrq(m::VERSION), ocrq(77)].concat();
        crate::fuzz_seed::save("pptp_control", &[&[7u8][..], &stream].concat());
        for chunk in stream.chunks(7) {
            c.handle_bytes(now, chunk).unwrap();
        }
        assert_eq!(kinds(&mut c), vec![m::SCCRP]);
        assert_eq!(
            c.poll(),
            Some(ControlEvent::CallRequested { peer_call_id: 77 })
        );
        c.accept_call(5, 77);
        assert_eq!(kinds(&mut c), vec![m::OCRP]);
        c.handle_bytes(now, &raw(5, &9u32.to_be_bytes())).unwrap();
        assert_eq!(kinds(&mut c), vec![m::ECHO_RP]);
        c.handle_bytes(now, &raw(12, &[0, 77, 0, 0])).unwrap();
        assert_eq!(kinds(&mut c), vec![m::CDN]);
        assert_eq!(c.poll(), Some(ControlEvent::CallCleared { call_id: 5 }));
        c.handle_bytes(now, &raw(3, &[1, 0, 0, 0])).unwrap();
        assert_eq!(kinds(&mut c), vec![m::STOP_CCRP]);
        assert_eq!(c.poll(), Some(ControlEvent::Stopped));
    }

    #[test]
    fn a_carried_connection_keeps_its_call_and_a_half_read_message() {
        let now = Instant::now();
        let mut c = ControlConnection::new(now, 0);
        assert!(c.carry().is_none(), "not started");
        c.handle_bytes(now, &[sccrq(m::VERSION), ocrq(77)].concat())
            .unwrap();
        c.accept_call(5, 77);
        assert!(c.carry().is_none(), "answers still queued");
        kinds(&mut c);
        // Half of a Call-Clear-Request has arrived when the restart comes.
        let ccrq = raw(12, &[0, 77, 0, 0]);
        c.handle_bytes(now, &ccrq[..6]).unwrap();
        let carried = c.carry().unwrap();
        let mut r = ControlConnection::resume(&carried, now);
        r.handle_bytes(now, &ccrq[6..]).unwrap();
        assert_eq!(kinds(&mut r), vec![m::CDN]);
        assert_eq!(r.poll(), Some(ControlEvent::CallCleared { call_id: 5 }));
    }

    #[test]
    fn a_refused_call_gets_an_ocrp_with_the_result_and_no_call() {
        let now = Instant::now();
        let mut c = ControlConnection::new(now, 0);
        c.handle_bytes(now, &[sccrq(m::VERSION), ocrq(3)].concat())
            .unwrap();
        kinds(&mut c);
        c.refuse_call(3, m::OCRP_BUSY);
        let p = c.poll_transmit().unwrap();
        assert_eq!(u16::from_be_bytes([p[8], p[9]]), m::OCRP);
        // Our call ID 0, theirs 3, result "busy".
        assert_eq!(&p[12..17], &[0, 0, 0, 3, m::OCRP_BUSY]);
        c.clear_call(0);
        assert_eq!(kinds(&mut c), Vec::<u16>::new(), "no call to clear");
    }

    #[test]
    fn the_gateway_clears_the_last_call_and_stops() {
        let now = Instant::now();
        let mut c = ControlConnection::new(now, 0);
        c.handle_bytes(now, &[sccrq(m::VERSION), ocrq(1)].concat())
            .unwrap();
        c.accept_call(9, 1);
        kinds(&mut c);
        c.clear_call(9);
        assert_eq!(kinds(&mut c), vec![m::CDN, m::STOP_CCRQ]);
    }

    #[test]
    fn bad_input_ends_the_connection_with_a_reason() {
        let now = Instant::now();
        let mut c = ControlConnection::new(now, 0);
        assert_eq!(
            c.handle_bytes(now, &ocrq(1)),
            Err(ControlError::NotStarted("OCRQ"))
        );
        let mut c = ControlConnection::new(now, 0);
        assert_eq!(
            c.handle_bytes(now, &sccrq(0x0200)),
            Err(ControlError::Version(0x0200))
        );
        let mut c = ControlConnection::new(now, 0);
        let mut bad = sccrq(m::VERSION);
        bad[4] = 0;
        assert!(matches!(
            c.handle_bytes(now, &bad),
            Err(ControlError::Wire(PptpError::BadCookie(_)))
        ));
        let mut c = ControlConnection::new(now, 0);
        c.handle_bytes(now, &sccrq(m::VERSION)).unwrap();
        c.handle_bytes(now, &raw(99, &[])).unwrap();
        assert_eq!(c.poll(), Some(ControlEvent::Ignored { kind: 99 }));
    }

    #[test]
    fn set_up_deadline_and_echo_keepalive() {
        let t0 = Instant::now();
        let mut c = ControlConnection::new(t0, 0);
        c.handle_bytes(t0, &sccrq(m::VERSION)).unwrap();
        assert!(c.handle_timeout(t0 + Duration::from_secs(5)).is_ok());
        assert_eq!(
            c.handle_timeout(c.poll_timeout()),
            Err(ControlError::SetupTimeout(SETUP_TIMEOUT))
        );

        let mut c = ControlConnection::new(t0, 0);
        c.handle_bytes(t0, &[sccrq(m::VERSION), ocrq(1)].concat())
            .unwrap();
        c.accept_call(3, 1);
        kinds(&mut c);
        let t = c.poll_timeout();
        c.handle_timeout(t).unwrap();
        assert_eq!(kinds(&mut c), vec![m::ECHO_RQ]);
        assert_eq!(
            c.handle_timeout(c.poll_timeout()),
            Err(ControlError::EchoTimeout)
        );
    }
}
