//! LCP options (RFC 1661 §6): MRU, ACCM, authentication protocol, magic
//! number (with loop detection), PFC and ACFC. One type serves both ends:
//! the authenticator asks for an auth protocol, the peer accepts one.
use super::{consts::*, fsm::*};

/// An authentication protocol, in the form LCP negotiates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Auth {
    Pap,
    /// CHAP-MD5 needs the clear password, which the gateway does not
    /// store: it is offered only when a RADIUS server decides logins.
    ChapMd5,
    MsChapV2,
}

impl Auth {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Auth::Pap => PROTO_PAP.to_be_bytes().to_vec(),
            Auth::MsChapV2 => [&PROTO_CHAP.to_be_bytes()[..], &[CHAP_MSV2]].concat(),
            Auth::ChapMd5 => [&PROTO_CHAP.to_be_bytes()[..], &[CHAP_MD5]].concat(),
        }
    }

    pub fn decode(v: &[u8]) -> Option<Auth> {
        match v {
            [0xc0, 0x23] => Some(Auth::Pap),
            [0xc2, 0x23, CHAP_MSV2] => Some(Auth::MsChapV2),
            [0xc2, 0x23, CHAP_MD5] => Some(Auth::ChapMd5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Auth::Pap => "pap",
            Auth::MsChapV2 => "mschap-v2",
            Auth::ChapMd5 => "chap-md5",
        }
    }
}

/// What both sides agreed on, once LCP is open.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LcpAgreed {
    /// The peer's MRU: the largest frame we may send it.
    pub peer_mru: u16,
    pub peer_magic: u32,
    pub our_magic: u32,
    /// The auth protocol the peer must use (authenticator side).
    pub auth: Option<Auth>,
    /// The peer accepts compressed protocol / address-control fields.
    pub peer_pfc: bool,
    pub peer_acfc: bool,
}

pub struct Lcp {
    pub mru: u16,
    /// Authenticator: protocols we accept, most preferred first (empty: none asked).
    pub auth_choices: Vec<Auth>,
    /// Peer side: protocols we can do when the other end asks.
    pub auth_supported: Vec<Auth>,
    magic: u32,
    rng: u32,
    pub agreed: LcpAgreed,
    /// Magic-number collisions seen (a looped-back link).
    pub loops: u32,
}

impl Lcp {
    /// `seed`: randomness for magic numbers (the engine takes no RNG of its own).
    pub fn new(auth_choices: Vec<Auth>, auth_supported: Vec<Auth>, seed: u32) -> Lcp {
        let mut l = Lcp {
            mru: DEFAULT_MRU,
            auth_choices,
            auth_supported,
            magic: 0,
            rng: seed | 1,
            agreed: LcpAgreed::default(),
            loops: 0,
        };
        l.magic = l.next_random();
        l
    }

    fn next_random(&mut self) -> u32 {
        // xorshift32; only has to avoid collisions, not be secret.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.max(1)
    }

    pub fn magic(&self) -> u32 {
        self.magic
    }

    /// The generator's state (a restart carries it with the magic number).
    pub fn rng_state(&self) -> u32 {
        self.rng
    }

    /// The options of a link that is up, as a restart's successor resumes them.
    pub fn resumed(
        auth_choices: Vec<Auth>,
        mru: u16,
        magic: u32,
        rng: u32,
        agreed: LcpAgreed,
    ) -> Lcp {
        Lcp {
            mru,
            auth_choices,
            auth_supported: Vec::new(),
            magic,
            rng: rng | 1,
            agreed,
            loops: 0,
        }
    }
}

impl Options for Lcp {
    fn request(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        if self.mru != DEFAULT_MRU {
            put_option(&mut o, LCP_MRU, &self.mru.to_be_bytes());
        }
        if let Some(a) = self.auth_choices.first() {
            put_option(&mut o, LCP_AUTH, &a.encode());
        }
        put_option(&mut o, LCP_MAGIC, &self.magic.to_be_bytes());
        o
    }

    fn check(&mut self, opts: &[u8], must_reject: bool) -> Verdict {
        let (mut nak, mut rej) = (Vec::new(), Vec::new());
        let mut agreed = LcpAgreed {
            peer_mru: DEFAULT_MRU,
            our_magic: self.magic,
            auth: self.agreed.auth,
            ..Default::default()
        };
        for o in options(opts) {
            let Some((t, v)) = o else {
                return Verdict::Reject(opts.to_vec());
            };
            match (t, v.len()) {
                (LCP_MRU, 2) => {
                    let mru = u16::from_be_bytes([v[0], v[1]]);
                    if mru < 128 {
                        put_option(&mut nak, LCP_MRU, &DEFAULT_MRU.to_be_bytes());
                    } else {
                        agreed.peer_mru = mru;
                    }
                }
                // Async control characters mean nothing over PPTP/L2TP; accept any map.
                (LCP_ACCM, 4) => {}
                (LCP_AUTH, _) => match Auth::decode(v) {
                    Some(a) if self.auth_supported.contains(&a) => {}
                    _ => match self.auth_supported.first() {
                        Some(a) => put_option(&mut nak, LCP_AUTH, &a.encode()),
                        None => put_option(&mut rej, t, v),
                    },
                },
                (LCP_MAGIC, 4) => {
                    let m = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                    if m == 0 || m == self.magic {
                        // Our own magic came back: a looped link (or a collision).
                        self.loops += u32::from(m != 0);
                        let fresh = self.next_random();
                        put_option(&mut nak, LCP_MAGIC, &fresh.to_be_bytes());
                    } else {
                        agreed.peer_magic = m;
                    }
                }
                (LCP_PFC, 0) => agreed.peer_pfc = true,
                (LCP_ACFC, 0) => agreed.peer_acfc = true,
                _ => put_option(&mut rej, t, v),
            }
        }
        if !rej.is_empty() {
            Verdict::Reject(rej)
        } else if !nak.is_empty() {
            if must_reject {
                Verdict::Reject(nak)
            } else {
                Verdict::Nak(nak)
            }
        } else {
            self.agreed = agreed;
            Verdict::Ack
        }
    }

    fn acked(&mut self, opts: &[u8]) {
        self.agreed.our_magic = self.magic;
        for (t, v) in options(opts).flatten() {
            if t == LCP_AUTH {
                self.agreed.auth = Auth::decode(v);
            }
        }
    }

    fn naked(&mut self, opts: &[u8]) -> bool {
        let had_auth = !self.auth_choices.is_empty();
        for (t, v) in options(opts).flatten() {
            match t {
                LCP_MRU if v.len() == 2 => {
                    self.mru = u16::from_be_bytes([v[0], v[1]]).max(576);
                }
                LCP_MAGIC => {
                    self.loops += 1;
                    self.magic = self.next_random();
                }
                LCP_AUTH => {
                    // Take the peer's suggestion if we accept it, else our next choice.
                    match Auth::decode(v).filter(|a| self.auth_choices.contains(a)) {
                        Some(a) => self.auth_choices.retain(|x| *x == a),
                        None => {
                            if !self.auth_choices.is_empty() {
                                self.auth_choices.remove(0);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // An authenticator that ran out of acceptable protocols gives up.
        !(had_auth && self.auth_choices.is_empty())
    }

    fn rejected(&mut self, opts: &[u8]) -> bool {
        for (t, _) in options(opts).flatten() {
            match t {
                // An authenticator cannot do without authentication.
                LCP_AUTH => return false,
                LCP_MRU => self.mru = DEFAULT_MRU,
                // Magic rejected: run without (loop detection off).
                LCP_MAGIC => self.magic = 0,
                _ => {}
            }
        }
        true
    }

    fn reset(&mut self) {
        self.agreed = LcpAgreed::default();
    }
}

/// An Echo-Request/Reply data field: the sender's magic number, then data.
pub fn echo_data(magic: u32, extra: &[u8]) -> Vec<u8> {
    [&magic.to_be_bytes()[..], extra].concat()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::ppp::fsm::testing::converse;

    fn pair(server_auth: Vec<Auth>, client_auth: Vec<Auth>) -> (Fsm<Lcp>, Fsm<Lcp>) {
        (
            Fsm::new(Lcp::new(server_auth, vec![], 0x1234_5678)),
            Fsm::new(Lcp::new(vec![], client_auth, 0x9abc_def0)),
        )
    }

    fn run(a: &mut Fsm<Lcp>, b: &mut Fsm<Lcp>) {
        converse(a, b, Instant::now());
    }

    #[test]
    fn the_authenticator_gets_its_preferred_protocol_the_peer_supports() {
        let (mut s, mut c) = pair(
            vec![Auth::MsChapV2, Auth::Pap],
            vec![Auth::Pap, Auth::MsChapV2],
        );
        run(&mut s, &mut c);
        assert!(s.is_open() && c.is_open());
        assert_eq!(s.opts.agreed.auth, Some(Auth::MsChapV2));
        assert_ne!(s.opts.agreed.peer_magic, 0);
        assert_eq!(s.opts.agreed.peer_magic, c.opts.magic());
    }

    #[test]
    fn a_peer_without_the_preferred_protocol_naks_to_one_we_accept() {
        let (mut s, mut c) = pair(vec![Auth::MsChapV2, Auth::Pap], vec![Auth::Pap]);
        run(&mut s, &mut c);
        assert!(s.is_open());
        assert_eq!(s.opts.agreed.auth, Some(Auth::Pap));
    }

    #[test]
    fn no_common_auth_protocol_never_opens() {
        let (mut s, mut c) = pair(vec![Auth::MsChapV2], vec![Auth::Pap]);
        run(&mut s, &mut c);
        assert!(!s.is_open());
    }

    #[test]
    fn a_looped_back_link_is_detected() {
        let now = Instant::now();
        let mut s = Fsm::new(Lcp::new(vec![], vec![], 7));
        s.open(now);
        s.up(now);
        // Feed our own request back to us, as a looped line would.
        let req = s.poll_transmit().unwrap();
        let _ = s.handle_packet(now, &req);
        assert_eq!(s.opts.loops, 1);
        let nak = s.poll_transmit().unwrap();
        assert_eq!(nak[0], CONF_NAK);
    }
}
