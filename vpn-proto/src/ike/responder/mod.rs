//! One ISAKMP SA on the responder side, from the first Main Mode message
//! to its deletion, with the Quick Mode and Informational exchanges that
//! run under it. Typed states: `SaSent` → `KeSent` → `Up` (or `Dead`).
pub mod carry;
mod informational;
mod main_mode;
mod quick_mode;
mod rekey;
pub use rekey::ACTIVATE_AFTER;
mod seal;

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddrV4,
    sync::Arc,
    time::{Duration, Instant},
};

use zeroize::Zeroizing;

use super::{
    consts::*,
    keys::Phase1Keys,
    message::Header,
    proposal::{Phase1Algs, Phase1Choice},
};
use crate::esp::EspTransform;

/// What the engine needs from its host: entropy, and inbound SPIs unique
/// across the gateway.
pub trait Host {
    fn random(&mut self, buf: &mut [u8]);
    fn new_spi(&mut self) -> u32;
}

pub struct Config {
    pub psk: Zeroizing<Vec<u8>>,
    /// Accept MODP1536/MODP1024 and 3DES (older Android, macOS fallbacks).
    pub legacy: bool,
    /// Lifetime ceilings: a longer proposal is accepted and cut short here.
    pub max_phase1_life: Duration,
    pub max_phase2_life: Duration,
    /// Main Mode must finish within this (half-open SAs expire).
    pub setup_deadline: Duration,
}

/// Our address and port the client reaches, and the client's as seen here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

/// The NAT-T dialect the client announced (and we answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NatT {
    Rfc3947,
    Draft,
}

/// An ESP SA pair negotiated by Quick Mode.
pub struct ChildSa {
    pub message_id: u32,
    pub spi_in: u32,
    pub spi_out: u32,
    pub transform: EspTransform,
    pub keymat_in: Zeroizing<Vec<u8>>,
    pub keymat_out: Zeroizing<Vec<u8>>,
    /// ESP in UDP (4500) rather than IP protocol 50.
    pub udp_encap: bool,
    pub lifetime: Duration,
    /// The client's L2TP port from its traffic selector (0: any).
    pub client_port: u16,
    /// What a Quick Mode started by the gateway proposes to replace it.
    pub template: ChildTemplate,
}

/// What a new SA pair like this one needs: the transform as negotiated
/// (raw, with its attributes), the PFS group, the traffic selectors as the
/// client sent them (initiator's, responder's), the encapsulation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChildTemplate {
    pub transform: EspTransform,
    pub transform_raw: Vec<u8>,
    pub pfs: Option<super::dh::DhGroup>,
    pub ids: Option<(Vec<u8>, Vec<u8>)>,
    pub udp_encap: bool,
    pub lifetime: Duration,
    pub client_port: u16,
}

pub enum IkeEvent {
    /// Main Mode authenticated the client (it knows the PSK).
    Established {
        initial_contact: bool,
    },
    /// A Quick Mode answered: the inbound SA can be used now, the outbound
    /// one once [`IkeEvent::ChildActive`] says the client installed it, or
    /// once the client's first packet arrives on the new inbound SA.
    Child(Box<ChildSa>),
    /// The client's QM3 (it started the exchange), or [`ACTIVATE_AFTER`]
    /// after ours.
    ChildActive {
        spi_in: u32,
    },
    /// The client deleted an ESP SA (named by either of its SPIs).
    DeleteChild {
        spi: u32,
    },
    InitialContact,
    /// A Quick Mode was refused (the ISAKMP SA stays up); for the log.
    Refusal {
        reason: String,
    },
    /// The client answered or sent a DPD message (it is alive).
    Alive,
    /// This ISAKMP SA is gone (deleted, expired or failed).
    Closed {
        reason: String,
    },
}

/// Why a message was not acted on (for counters and the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IkeError {
    Malformed,
    /// Wrong exchange for the state, or an unknown exchange type.
    Unexpected,
    NoProposal,
    /// HASH_I did not match, or MM5 did not decrypt: a wrong PSK.
    AuthFailed,
    /// A protected message whose hash is wrong.
    BadHash,
    /// A Quick Mode flood on one ISAKMP SA.
    Busy,
}

impl IkeError {
    pub fn name(self) -> &'static str {
        match self {
            IkeError::Malformed => "malformed",
            IkeError::Unexpected => "unexpected",
            IkeError::NoProposal => "no_proposal",
            IkeError::AuthFailed => "auth_failed",
            IkeError::BadHash => "bad_hash",
            IkeError::Busy => "busy",
        }
    }
}

/// A refused first message: why, and the unprotected notification to send.
pub struct Refused {
    pub error: IkeError,
    pub reason: String,
    pub reply: Option<Vec<u8>>,
}

struct SaSent {
    choice: Phase1Choice,
    sai_b: Vec<u8>,
}

struct KeSent {
    algs: Phase1Algs,
    lifetime: Option<u64>,
    sai_b: Vec<u8>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    keys: Phase1Keys,
}

struct Up {
    algs: Phase1Algs,
    keys: Phase1Keys,
    /// The last CBC block of Main Mode: base of every later exchange's IV.
    phase1_iv: Vec<u8>,
}

enum State {
    SaSent(Box<SaSent>),
    KeSent(Box<KeSent>),
    Up(Box<Up>),
    Dead,
}

/// Quick Modes answered and waiting for their third message.
struct Quick {
    qm1: Vec<u8>,
    qm2: Vec<u8>,
    iv: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    spi_in: u32,
    started: Instant,
}

const MAX_QUICK_IN_FLIGHT: usize = 4;
const QUICK_DEADLINE: Duration = Duration::from_secs(30);

pub struct IkeSa {
    cfg: Arc<Config>,
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    pub ends: Endpoints,
    state: State,
    pub natt: Option<NatT>,
    pub peer_behind_nat: bool,
    pub we_behind_nat: bool,
    /// The client announced RFC 3706 DPD.
    pub dpd: bool,
    pub initial_contact: bool,
    created: Instant,
    expires: Option<Instant>,
    last_in: Vec<u8>,
    last_out: Option<Vec<u8>>,
    quick: HashMap<u32, Quick>,
    /// Quick Modes the gateway started (rekeys), by message ID.
    initiated: HashMap<u32, rekey::Initiated>,
    /// Recently finished Quick Mode message IDs (late duplicates are ignored).
    done: VecDeque<u32>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<IkeEvent>,
}

impl IkeSa {
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    pub fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead)
    }

    /// When the client's first message made this SA.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Negotiated Phase 1 algorithms, e.g. "aes256-sha256-modp2048".
    pub fn algorithms(&self) -> Option<String> {
        match &self.state {
            State::SaSent(s) => Some(s.choice.algs.name()),
            State::KeSent(k) => Some(k.algs.name()),
            State::Up(u) => Some(u.algs.name()),
            State::Dead => None,
        }
    }

    /// Whether IKE and ESP should use UDP 4500 (NAT on either side).
    pub fn nat_detected(&self) -> bool {
        self.natt.is_some() && (self.peer_behind_nat || self.we_behind_nat)
    }

    /// The client's IKE endpoint moved (NAT-T float to 4500, or a NAT
    /// rebinding seen on an authenticated message).
    pub fn set_remote(&mut self, remote: SocketAddrV4) {
        self.ends.remote = remote;
    }

    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: &[u8],
        host: &mut dyn Host,
    ) -> Result<(), IkeError> {
        let h = Header::decode(msg).map_err(|_| IkeError::Malformed)?;
        let msg = &msg[..h.length as usize];
        if h.exchange == EXCH_MAIN && msg == self.last_in.as_slice() {
            // The client did not get our answer: send it again (a repeated
            // MM1 still has no responder cookie).
            if let Some(o) = &self.last_out {
                self.out.push_back(o.clone());
            }
            return Ok(());
        }
        if h.icookie != self.icookie || h.rcookie != self.rcookie {
            return Err(IkeError::Unexpected);
        }
        let encrypted = h.flags & FLAG_ENCRYPTED != 0;
        let r = match (&self.state, h.exchange, encrypted) {
            (State::SaSent(_), EXCH_MAIN, false) => self.main_mode_ke(&h, msg, host),
            (State::KeSent(_), EXCH_MAIN, true) => self.main_mode_auth(now, &h, msg),
            (State::Up(_), EXCH_QUICK, true) if self.initiated.contains_key(&h.message_id) => {
                self.quick_mode_answer(now, &h, msg)
            }
            (State::Up(_), EXCH_QUICK, true) => self.quick_mode(now, &h, msg, host),
            (State::Up(_), EXCH_INFO, true) => self.informational(&h, msg, host),
            // Unprotected notifications cannot be trusted: ignored.
            (_, EXCH_INFO, false) => Ok(()),
            _ => Err(IkeError::Unexpected),
        };
        if h.exchange == EXCH_MAIN && r.is_ok() {
            self.last_in = msg.to_vec();
        }
        r
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll(&mut self) -> Option<IkeEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Dead => None,
            State::Up(_) => {
                let quick = self
                    .quick
                    .values()
                    .map(|q| q.started + QUICK_DEADLINE)
                    .chain(self.initiated.values().map(rekey::Initiated::deadline))
                    .min();
                match (self.expires, quick) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => Some(self.created + self.cfg.setup_deadline),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, host: &mut dyn Host) {
        match &self.state {
            State::Dead => {}
            State::Up(_) => {
                self.quick.retain(|_, q| now < q.started + QUICK_DEADLINE);
                self.initiated_timeouts(now);
                if self.expires.is_some_and(|e| now >= e) {
                    self.close("its lifetime ended", host);
                }
            }
            _ => {
                if now >= self.created + self.cfg.setup_deadline {
                    self.die("Main Mode did not finish in time");
                }
            }
        }
    }

    /// Deletes this ISAKMP SA (telling the client, if it is up).
    pub fn close(&mut self, why: &str, host: &mut dyn Host) {
        if self.is_up() {
            let spi: Vec<u8> = [self.icookie, self.rcookie].concat();
            let body = super::message::delete(PROTO_ISAKMP, &[&spi]);
            self.send_informational(PL_DELETE, &body, host);
        }
        self.die(why);
    }

    fn die(&mut self, why: &str) {
        if !self.is_dead() {
            self.state = State::Dead;
            self.quick.clear();
            self.initiated.clear();
            self.events.push_back(IkeEvent::Closed {
                reason: why.to_string(),
            });
        }
    }
}
