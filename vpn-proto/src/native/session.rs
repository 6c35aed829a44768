//! The data channel of one session, either end, sans-IO: IP packets in and
//! out as AEAD datagrams, a replay window per key, keepalive and dead-peer
//! detection, rekeying (a fresh Noise NNpsk0 handshake inside the channel),
//! roaming (the peer's address follows its newest authentic packet) and BYE.
use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    ops::Range,
    time::{Duration, Instant},
};

use super::{
    consts::*,
    crypto::{self, AeadKey, Cipher, KeyPair},
    messages::{self, DataHeader, Reason},
};
use crate::replay::ReplayWindow;
use zeroize::Zeroizing;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Why a datagram was not accepted. Every one is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discard {
    Truncated,
    Malformed,
    UnknownSession,
    UnknownKey,
    Auth,
    Replay,
    Spoofed,
    BadControl,
    Closed,
}

impl Discard {
    pub const ALL: [Discard; 9] = [
        Discard::Truncated,
        Discard::Malformed,
        Discard::UnknownSession,
        Discard::UnknownKey,
        Discard::Auth,
        Discard::Replay,
        Discard::Spoofed,
        Discard::BadControl,
        Discard::Closed,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Discard::Truncated => "native_truncated",
            Discard::Malformed => "native_malformed",
            Discard::UnknownSession => "native_unknown_session",
            Discard::UnknownKey => "native_unknown_key",
            Discard::Auth => "native_auth_failed",
            Discard::Replay => "native_replayed",
            Discard::Spoofed => "native_spoofed_source",
            Discard::BadControl => "native_bad_control",
            Discard::Closed => "native_session_closed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's newest authentic packet came from a new address.
    PeerMoved(SocketAddr),
    /// New data keys are in use (the epoch's key id).
    Rekeyed(u8),
    /// The peer said BYE.
    Closed(Reason, String),
    /// Nothing authentic arrived for the dead-peer interval.
    PeerDead,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; Discard::COUNT],
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub keepalive: Duration,
    pub rekey: Duration,
}

impl Params {
    fn dead_after(&self) -> Duration {
        self.keepalive * DEAD_AFTER_KEEPALIVES + Duration::from_secs(1)
    }
}

/// What a session starts from: the handshake's outcome and the policy.
pub struct Setup {
    pub role: Role,
    pub id: u32,
    pub cipher: Cipher,
    /// Epoch-0 data keys.
    pub data: KeyPair,
    /// Wiped when dropped, as the session's copy is.
    pub psk: Zeroizing<[u8; 32]>,
    pub params: Params,
    /// Server: the client's assigned address (anti-spoofing).
    pub inner_addr: Option<Ipv4Addr>,
    /// Server: where the handshake came from (the first datagram may roam).
    pub peer: Option<SocketAddr>,
}

pub(super) struct SendKey {
    pub(super) id: u8,
    pub(super) key: AeadKey,
    pub(super) counter: u64,
}

pub(super) struct RecvKey {
    pub(super) id: u8,
    pub(super) key: AeadKey,
    pub(super) window: ReplayWindow,
}

pub(super) enum Rekey {
    Idle,
    /// Client: REKEY_INIT sent, waiting for REKEY_RESP.
    Initiated {
        hs: Box<snow::HandshakeState>,
        message: Vec<u8>,
        next_send: Instant,
        tries: u32,
    },
}

pub struct Session {
    pub(super) role: Role,
    pub(super) id: u32,
    pub(super) cipher: Cipher,
    pub(super) psk: Zeroizing<[u8; 32]>,
    pub(super) params: Params,
    pub(super) send: SendKey,
    /// Server: the newest key, used for sending once the client uses it.
    pub(super) pending_send: Option<SendKey>,
    /// Newest first; at most two (the current and the previous epoch).
    pub(super) recv: Vec<RecvKey>,
    pub(super) rekey: Rekey,
    /// Server: the last REKEY_RESP, resent if its REKEY_INIT is repeated.
    /// Our last rekey answer: its epoch, the INIT it answered, the answer.
    pub(super) last_rekey_resp: Option<(u8, Vec<u8>, Vec<u8>)>,
    pub(super) key_started: Instant,
    /// Client: when the next rekey starts (an interval after the last key,
    /// or a short pause after a rekey that got no answer).
    pub(super) rekey_due: Instant,
    pub(super) inner_addr: Option<Ipv4Addr>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) last_rx: Instant,
    pub(super) last_tx: Instant,
    pub(super) last_probe: Instant,
    pub(super) closed: bool,
    pub(super) transmit: VecDeque<Vec<u8>>,
    pub(super) events: VecDeque<Event>,
    pub stats: Stats,
}

impl Session {
    /// A session with the handshake's epoch-0 keys.
    pub fn new(setup: Setup, now: Instant) -> Session {
        let Setup {
            role,
            id,
            cipher,
            data,
            psk,
            params,
            inner_addr,
            peer,
        } = setup;
        Session {
            role,
            id,
            cipher,
            psk,
            params,
            send: SendKey {
                id: 0,
                key: AeadKey::new(cipher, &data.send),
                counter: 0,
            },
            pending_send: None,
            recv: vec![RecvKey {
                id: 0,
                key: AeadKey::new(cipher, &data.recv),
                window: ReplayWindow::default(),
            }],
            rekey: Rekey::Idle,
            last_rekey_resp: None,
            key_started: now,
            rekey_due: now + params.rekey,
            inner_addr,
            peer,
            last_rx: now,
            last_tx: now,
            last_probe: now,
            closed: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
    pub fn key_id(&self) -> u8 {
        self.send.id
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Encrypts an IP packet into a datagram in `out`.
    pub fn seal_ip(&mut self, now: Instant, ip: &[u8], out: &mut Vec<u8>) -> Result<(), Discard> {
        if self.closed {
            return Err(Discard::Closed);
        }
        self.seal(now, ip, out);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += ip.len() as u64;
        Ok(())
    }

    fn seal(&mut self, now: Instant, plain: &[u8], out: &mut Vec<u8>) {
        let header = DataHeader {
            key_id: self.send.id,
            session_id: self.id,
            counter: self.send.counter,
        }
        .encode();
        out.clear();
        out.reserve(OVERHEAD + plain.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(plain);
        self.send
            .key
            .seal(self.send.counter, &header, out, DATA_HEADER_LEN);
        self.send.counter += 1;
        self.last_tx = now;
    }

    fn queue_control(&mut self, now: Instant, plain: &[u8]) {
        let mut d = Vec::new();
        self.seal(now, plain, &mut d);
        self.transmit.push_back(d);
    }

    /// Decrypts a datagram in place. `Ok(Some(range))`: an IP packet at
    /// `datagram[range]`; `Ok(None)`: a control message, handled.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<Option<Range<usize>>, Discard> {
        let r = self.open_inner(now, from, datagram);
        if let Err(d) = r {
            self.stats.drops[d as usize] += 1;
        }
        r
    }

    fn open_inner(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<Option<Range<usize>>, Discard> {
        let h = DataHeader::decode(datagram).map_err(|e| match e {
            messages::WireError::Truncated => Discard::Truncated,
            _ => Discard::Malformed,
        })?;
        if self.closed {
            return Err(Discard::Closed);
        }
        if h.session_id != self.id {
            return Err(Discard::UnknownSession);
        }
        let k = self
            .recv
            .iter_mut()
            .position(|k| k.id == h.key_id)
            .ok_or(Discard::UnknownKey)?;
        let key = &mut self.recv[k];
        if !key.window.check(h.counter) {
            return Err(Discard::Replay);
        }
        let newest = key.window.highest().is_none_or(|hi| h.counter > hi);
        let (head, body) = datagram.split_at_mut(DATA_HEADER_LEN);
        let n = key.key.open(h.counter, head, body).ok_or(Discard::Auth)?;
        key.window.update(h.counter);
        self.last_rx = now;
        if newest && k == 0 && self.peer != Some(from) {
            // Roaming: replies follow the newest authentic packet.
            if self.peer.is_some() {
                self.events.push_back(Event::PeerMoved(from));
            }
            self.peer = Some(from);
        }
        if self.pending_send.as_ref().is_some_and(|p| p.id == h.key_id) {
            // The client uses the new key: it has it, so send with it too.
            self.send = self.pending_send.take().expect("checked");
            self.key_started = now;
            self.events.push_back(Event::Rekeyed(h.key_id));
        }
        let plain = DATA_HEADER_LEN..DATA_HEADER_LEN + n;
        let Some(&first) = datagram[plain.clone()].first() else {
            return Err(Discard::BadControl);
        };
        match first >> 4 {
            4 => {
                let p = &datagram[plain.clone()];
                if self.role == Role::Server {
                    let src = p.get(12..16).map(|s| Ipv4Addr::new(s[0], s[1], s[2], s[3]));
                    if p.len() < 20 || src != self.inner_addr {
                        return Err(Discard::Spoofed);
                    }
                }
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += n as u64;
                Ok(Some(plain))
            }
            // The gateway assigns no IPv6 address, so no IPv6 source is the client's.
            6 if self.role == Role::Server => Err(Discard::Spoofed),
            6 => {
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += n as u64;
                Ok(Some(plain))
            }
            _ => {
                let msg = datagram[plain].to_vec();
                self.control(now, &msg).map(|()| None)
            }
        }
    }

    fn control(&mut self, now: Instant, msg: &[u8]) -> Result<(), Discard> {
        match (msg[0], self.role) {
            (CTL_KEEPALIVE, Role::Server) => {
                self.queue_control(now, &[CTL_KEEPALIVE_REPLY]);
                Ok(())
            }
            (CTL_KEEPALIVE_REPLY, Role::Client) => Ok(()),
            (CTL_REKEY_INIT, Role::Server) if msg.len() > 2 => {
                self.answer_rekey(now, msg[1], &msg[2..])
            }
            (CTL_REKEY_RESP, Role::Client) if msg.len() > 2 => {
                self.finish_rekey(now, msg[1], &msg[2..])
            }
            (CTL_BYE, _) => {
                let (reason, text) =
                    messages::decode_reason(&msg[1..]).map_err(|_| Discard::BadControl)?;
                self.closed = true;
                self.events.push_back(Event::Closed(reason, text));
                Ok(())
            }
            _ => Err(Discard::BadControl),
        }
    }

    fn rekey_prologue(&self, epoch: u8) -> Vec<u8> {
        let mut p = PROLOGUE_LABEL.to_vec();
        p.extend_from_slice(b" rekey");
        p.extend_from_slice(&self.id.to_be_bytes());
        p.push(epoch);
        p
    }

    fn install_recv(&mut self, id: u8, key: &[u8; 32]) {
        self.recv.insert(
            0,
            RecvKey {
                id,
                key: AeadKey::new(self.cipher, key),
                window: ReplayWindow::default(),
            },
        );
        self.recv.truncate(2);
    }

    /// Client: start a rekey (also on demand, e.g. from tests).
    pub fn start_rekey(&mut self, now: Instant) {
        if self.role != Role::Client || self.closed || matches!(self.rekey, Rekey::Initiated { .. })
        {
            return;
        }
        let epoch = self.send.id.wrapping_add(1);
        let mut hs =
            crypto::noise(&self.psk, &self.rekey_prologue(epoch), true).expect("valid Noise setup");
        let mut buf = vec![0u8; 256];
        let n = hs.write_message(&[], &mut buf).expect("fits");
        let mut message = vec![CTL_REKEY_INIT, epoch];
        message.extend_from_slice(&buf[..n]);
        self.queue_control(now, &message);
        self.rekey = Rekey::Initiated {
            hs: Box::new(hs),
            message,
            next_send: now + REKEY_RETRY,
            tries: 1,
        };
    }

    fn answer_rekey(&mut self, now: Instant, epoch: u8, noise_msg: &[u8]) -> Result<(), Discard> {
        // The same INIT again: our answer was lost, send it again. A new
        // INIT for the same epoch (the client gave up and started over with
        // a fresh ephemeral key) gets a fresh answer.
        if let Some((e, init, resp)) = &self.last_rekey_resp {
            if *e == epoch && init == noise_msg {
                let resp = resp.clone();
                self.queue_control(now, &resp);
                return Ok(());
            }
        }
        if epoch != self.send.id.wrapping_add(1) {
            return Err(Discard::BadControl);
        }
        let mut hs = crypto::noise(&self.psk, &self.rekey_prologue(epoch), false)
            .expect("valid Noise setup");
        let mut buf = vec![0u8; 256];
        hs.read_message(noise_msg, &mut buf)
            .map_err(|_| Discard::BadControl)?;
        let n = hs.write_message(&[], &mut buf).expect("fits");
        let (i2r, r2i) = hs.dangerously_get_raw_split();
        let keys = crypto::data_keys(&i2r, &r2i, false);
        self.install_recv(epoch, &keys.recv);
        self.pending_send = Some(SendKey {
            id: epoch,
            key: AeadKey::new(self.cipher, &keys.send),
            counter: 0,
        });
        let mut resp = vec![CTL_REKEY_RESP, epoch];
        resp.extend_from_slice(&buf[..n]);
        self.queue_control(now, &resp);
        self.last_rekey_resp = Some((epoch, noise_msg.to_vec(), resp));
        Ok(())
    }

    fn finish_rekey(&mut self, now: Instant, epoch: u8, noise_msg: &[u8]) -> Result<(), Discard> {
        let Rekey::Initiated { hs, message, .. } = &mut self.rekey else {
            return Ok(()); // a duplicate answer to a finished rekey
        };
        if message[1] != epoch {
            return Err(Discard::BadControl);
        }
        let mut buf = vec![0u8; 256];
        hs.read_message(noise_msg, &mut buf)
            .map_err(|_| Discard::BadControl)?;
        let (i2r, r2i) = hs.dangerously_get_raw_split();
        let keys = crypto::data_keys(&i2r, &r2i, true);
        self.rekey = Rekey::Idle;
        self.install_recv(epoch, &keys.recv);
        self.send = SendKey {
            id: epoch,
            key: AeadKey::new(self.cipher, &keys.send),
            counter: 0,
        };
        self.key_started = now;
        self.rekey_due = now + self.params.rekey;
        self.events.push_back(Event::Rekeyed(epoch));
        // Confirm at once, so the gateway switches without waiting for data.
        self.queue_control(now, &[CTL_KEEPALIVE]);
        self.last_probe = now;
        Ok(())
    }

    /// Client: sends a keepalive now (e.g. right after the handshake, so the
    /// gateway learns the client's UDP address before traffic needs it).
    pub fn probe(&mut self, now: Instant) {
        if self.role == Role::Client && !self.closed {
            self.queue_control(now, &[CTL_KEEPALIVE]);
            self.last_probe = now;
        }
    }

    /// Runs timers: keepalive, rekey (client), dead-peer detection (both).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if now.saturating_duration_since(self.last_rx) >= self.params.dead_after() {
            self.closed = true;
            self.events.push_back(Event::PeerDead);
            return;
        }
        if self.role == Role::Server {
            // A client that never renews its keys (a broken or hostile one)
            // does not keep a session on old keys for ever.
            if now >= self.key_expiry() {
                let byes = self.close(now, Reason::Expired, "the session keys were not renewed");
                self.transmit.extend(byes);
                self.events
                    .push_back(Event::Closed(Reason::Expired, "keys not renewed".into()));
            }
            return;
        }
        if now >= self.keepalive_due() {
            self.queue_control(now, &[CTL_KEEPALIVE]);
            self.last_probe = now;
        }
        match &mut self.rekey {
            Rekey::Idle => {
                if now >= self.rekey_due || self.send.counter >= REKEY_AFTER_PACKETS {
                    self.start_rekey(now);
                }
            }
            Rekey::Initiated {
                message,
                next_send,
                tries,
                ..
            } if now >= *next_send => {
                if *tries >= REKEY_TRIES {
                    // Give up for now and start over soon (the gateway ends
                    // sessions whose keys get too old); dead-peer detection
                    // decides the rest.
                    self.rekey = Rekey::Idle;
                    self.rekey_due = now + REKEY_PAUSE;
                } else {
                    *tries += 1;
                    *next_send = now + REKEY_RETRY;
                    let m = message.clone();
                    self.queue_control(now, &m);
                }
            }
            Rekey::Initiated { .. } => {}
        }
    }

    fn keepalive_due(&self) -> Instant {
        let quiet = self.last_tx.min(self.last_rx);
        (quiet + self.params.keepalive).max(self.last_probe + self.params.keepalive)
    }

    /// Gateway: the session ends when its keys are this old (twice the
    /// rekey interval: the client renews them once per interval).
    fn key_expiry(&self) -> Instant {
        self.key_started + 2 * self.params.rekey
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.last_rx + self.params.dead_after();
        if self.role == Role::Server {
            t = t.min(self.key_expiry());
        }
        if self.role == Role::Client {
            t = t.min(self.keepalive_due());
            t = t.min(match &self.rekey {
                Rekey::Idle => self.rekey_due,
                Rekey::Initiated { next_send, .. } => *next_send,
            });
        }
        t
    }

    /// Ends the session: BYE datagrams to send (several: BYE is not acknowledged).
    pub fn close(&mut self, now: Instant, reason: Reason, msg: &str) -> Vec<Vec<u8>> {
        if self.closed {
            return Vec::new();
        }
        let mut bye = vec![CTL_BYE];
        bye.extend_from_slice(&messages::encode_reason(reason, msg));
        let out = (0..BYE_COPIES)
            .map(|_| {
                let mut d = Vec::new();
                self.seal(now, &bye, &mut d);
                d
            })
            .collect();
        self.closed = true;
        out
    }

    /// A datagram the engine wants sent to the peer (control answers, keepalives).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
