//! The peer's side of a PPP link, built from the same parts as the
//! gateway's (LCP, an MS-CHAPv2, CHAP-MD5 or PAP login, IPCP as a client,
//! CCP/MPPE):
//! what the project's own test clients use to bring up PPTP and L2TP calls
//! without pppd (churn tests, the link's unit tests). Sans-IO: frames in,
//! frames out, the caller's clock.
use std::{collections::VecDeque, net::Ipv4Addr, time::Instant};

use zeroize::Zeroizing;

use super::{
    auth::chap_response,
    consts::*,
    fsm::{self, Fsm},
    ipcp::Ipcp,
    lcp::{echo_data, Auth, Lcp},
    link::{frame, parse_frame},
    mppe::{Ccp, Mppe},
    mschap::{self, NtHash},
};

pub struct Client {
    auth: Auth,
    /// PAP: when the Authenticate-Request went out (resent each restart
    /// interval until answered).
    pap_sent: Option<Instant>,
    user: String,
    password: Zeroizing<String>,
    peer_challenge: [u8; 16],
    lcp: Fsm<Lcp>,
    ipcp: Fsm<Ipcp>,
    /// `None`: CCP is refused (no MPPE).
    ccp: Option<Fsm<Ccp>>,
    master: Option<mschap::MasterKey>,
    mppe: Option<(Mppe, Mppe)>,
    ncp_started: bool,
    /// The gateway refused the login (PAP-Nak, CHAP Failure).
    refused: bool,
    out: VecDeque<Vec<u8>>,
    ip_in: Vec<Vec<u8>>,
}

impl Client {
    /// A client whose lower layer is up; it sends its LCP request at once.
    /// `random`: a fresh peer challenge and magic-number seed.
    pub fn new(now: Instant, user: &str, password: &str, mppe: bool, random: [u8; 20]) -> Client {
        Client::with_auth(now, user, password, Auth::MsChapV2, mppe, random)
    }

    /// A client that logs in with `auth` (MPPE needs MS-CHAPv2's keys).
    pub fn with_auth(
        now: Instant,
        user: &str,
        password: &str,
        auth: Auth,
        mppe: bool,
        random: [u8; 20],
    ) -> Client {
        let seed = u32::from_be_bytes(random[16..].try_into().expect("4 bytes"));
        let mut lcp = Fsm::new(Lcp::new(vec![], vec![auth], seed));
        lcp.open(now);
        lcp.up(now);
        let mut c = Client {
            auth,
            pap_sent: None,
            user: user.into(),
            password: Zeroizing::new(password.into()),
            peer_challenge: random[..16].try_into().expect("16 bytes"),
            lcp,
            ipcp: Fsm::new(Ipcp::client()),
            ccp: mppe.then(|| Fsm::new(Ccp::new(true, false, false))),
            master: None,
            mppe: None,
            ncp_started: false,
            refused: false,
            out: VecDeque::new(),
            ip_in: Vec::new(),
        };
        c.drain(now);
        c
    }

    /// One frame from the gateway.
    pub fn handle_frame(&mut self, now: Instant, f: &mut [u8]) {
        let Some((proto, at)) = parse_frame(f) else {
            return;
        };
        match proto {
            PROTO_LCP => {
                if let Err((ECHO_REQ, id, d)) = self.lcp.handle_packet(now, &f[at..]) {
                    let extra = d.get(4..).unwrap_or(&[]);
                    let r = fsm::packet(ECHO_REPLY, id, &echo_data(self.lcp.opts.magic(), extra));
                    self.lcp.send_raw(r);
                }
            }
            PROTO_CHAP if f.get(at) == Some(&CHAP_FAILURE) => self.refused = true,
            PROTO_CHAP if self.auth == Auth::ChapMd5 => self.chap_md5(now, &f[at..]),
            PROTO_CHAP => self.chap(now, &f[at..]),
            PROTO_PAP if f.get(at) == Some(&PAP_ACK) => self.start_ncp(now),
            PROTO_PAP if f.get(at) == Some(&PAP_NAK) => self.refused = true,
            PROTO_IPCP => {
                let _ = self.ipcp.handle_packet(now, &f[at..]);
            }
            PROTO_CCP => match self.ccp.as_mut() {
                Some(ccp) => {
                    let _ = ccp.handle_packet(now, &f[at..]);
                    if ccp.is_open() && self.mppe.is_none() {
                        if let (Some((s, st)), Some(m)) = (ccp.opts.mode(), self.master.as_ref()) {
                            self.mppe = Some(Mppe::client_pair(m, s, st));
                        }
                    }
                }
                None => {
                    // Protocol-Reject: the protocol, then the rejected packet.
                    let id = self.lcp.fresh_id();
                    let data = [&PROTO_CCP.to_be_bytes()[..], &f[at..]].concat();
                    self.lcp.send_raw(fsm::packet(PROTO_REJ, id, &data));
                }
            },
            PROTO_COMPRESSED => {
                if let Some((_, rx)) = self.mppe.as_mut() {
                    if let Ok(r) = rx.decrypt(&mut f[at..]) {
                        let inner = &f[at + r.start..at + r.end];
                        if inner.starts_with(&PROTO_IPV4.to_be_bytes()) {
                            self.ip_in.push(inner[2..].to_vec());
                        }
                    }
                }
            }
            PROTO_IPV4 => self.ip_in.push(f[at..].to_vec()),
            _ => {}
        }
        self.drain(now);
    }

    fn chap(&mut self, now: Instant, p: &[u8]) {
        match p.first() {
            Some(&CHAP_CHALLENGE) => {
                let Some((_, _, d)) = fsm::parse(p) else {
                    return;
                };
                let Some(auth) = d.get(1..17).and_then(|a| <[u8; 16]>::try_from(a).ok()) else {
                    return;
                };
                let Some(r) = chap_response(p, &self.user, &self.password, self.peer_challenge)
                else {
                    return;
                };
                let hash = NtHash::of_password(&self.password);
                let bare = self.user.rsplit('\\').next().unwrap_or(&self.user);
                let nt = mschap::nt_response(&auth, &self.peer_challenge, bare, &hash);
                self.master = Some(mschap::master_key(&hash, &nt));
                self.out.push_back(frame(PROTO_CHAP, &r));
            }
            Some(&CHAP_SUCCESS) => self.start_ncp(now),
            _ => {}
        }
    }

    /// RFC 1994 §4.1: the response is MD5(identifier, secret, challenge).
    fn chap_md5(&mut self, now: Instant, p: &[u8]) {
        use md5::{Digest as _, Md5};
        match fsm::parse(p) {
            Some((CHAP_CHALLENGE, id, d)) => {
                let Some(challenge) = d.get(1..1 + usize::from(*d.first().unwrap_or(&0))) else {
                    return;
                };
                let mut h = Md5::new();
                h.update([id]);
                h.update(self.password.as_bytes());
                h.update(challenge);
                let mut data = vec![16];
                data.extend_from_slice(&h.finalize());
                data.extend_from_slice(self.user.as_bytes());
                let r = fsm::packet(CHAP_RESPONSE, id, &data);
                self.out.push_back(frame(PROTO_CHAP, &r));
            }
            Some((CHAP_SUCCESS, _, _)) => self.start_ncp(now),
            _ => {}
        }
    }

    fn send_pap(&mut self, now: Instant) {
        let mut data = vec![self.user.len() as u8];
        data.extend_from_slice(self.user.as_bytes());
        data.push(self.password.len() as u8);
        data.extend_from_slice(self.password.as_bytes());
        let id = self.lcp.fresh_id();
        self.out
            .push_back(frame(PROTO_PAP, &fsm::packet(PAP_REQ, id, &data)));
        self.pap_sent = Some(now);
    }

    /// Logged in: IPCP (and CCP) start.
    fn start_ncp(&mut self, now: Instant) {
        if self.ncp_started {
            return;
        }
        self.ncp_started = true;
        self.ipcp.open(now);
        self.ipcp.up(now);
        if let Some(ccp) = self.ccp.as_mut() {
            ccp.open(now);
            ccp.up(now);
        }
    }

    /// Time passed: retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.pap_sent.is_some_and(|t| now >= t + RESTART_INTERVAL);
        if self.auth == Auth::Pap && due && !self.ncp_started {
            self.send_pap(now);
        }
        self.lcp.handle_timeout(now);
        self.ipcp.handle_timeout(now);
        if let Some(ccp) = self.ccp.as_mut() {
            ccp.handle_timeout(now);
        }
        self.drain(now);
    }

    fn drain(&mut self, now: Instant) {
        while let Some(p) = self.lcp.poll_transmit() {
            self.out.push_back(frame(PROTO_LCP, &p));
        }
        // PAP: the peer speaks first, once LCP is open.
        if self.auth == Auth::Pap && self.pap_sent.is_none() && self.lcp.is_open() {
            self.send_pap(now);
        }
        while let Some(p) = self.ipcp.poll_transmit() {
            self.out.push_back(frame(PROTO_IPCP, &p));
        }
        if let Some(ccp) = self.ccp.as_mut() {
            while let Some(p) = ccp.poll_transmit() {
                self.out.push_back(frame(PROTO_CCP, &p));
            }
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// IP can flow: IPCP is open and, if MPPE was wanted, keys are agreed.
    /// The gateway's MRU: the largest frame it takes.
    pub fn gateway_mru(&self) -> u16 {
        self.lcp.opts.agreed.peer_mru
    }

    /// The gateway refused the login.
    pub fn is_refused(&self) -> bool {
        self.refused
    }

    pub fn is_up(&self) -> bool {
        self.ipcp.is_open() && (self.ccp.is_none() || self.mppe.is_some())
    }

    /// The address the gateway gave us, once IPCP agreed.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.ipcp.is_open().then_some(self.ipcp.opts.local)
    }

    /// The DNS servers the gateway gave (primary, secondary; 0.0.0.0 if none).
    pub fn gateway_dns(&self) -> &[Ipv4Addr] {
        &self.ipcp.opts.got_dns
    }

    /// An IPv4 packet as a frame (encrypted when MPPE is on).
    pub fn ip_frame(&mut self, ip: &[u8]) -> Vec<u8> {
        match &mut self.mppe {
            Some((tx, _)) => {
                let mut body = Vec::new();
                tx.encrypt_parts(&[&PROTO_IPV4.to_be_bytes()[..], ip], &mut body);
                frame(PROTO_COMPRESSED, &body)
            }
            None => frame(PROTO_IPV4, ip),
        }
    }

    /// IPv4 packets received so far.
    pub fn take_ip(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.ip_in)
    }

    /// LCP Terminate-Request (a clean hang-up).
    pub fn close(&mut self, now: Instant) {
        self.lcp.close(now);
        self.drain(now);
    }
}
