//! One PPP link, the gateway's side: LCP, then authentication, then IPCP
//! (and CCP/MPPE when the policy wants encryption), then IP both ways; LCP
//! echo as keepalive. Tunnel-agnostic: PPTP (and L2TP next) feed it PPP
//! frames and send the frames it produces.
use std::{
    collections::VecDeque,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use super::{
    auth::{Authenticator, Credentials, Malformed, Outcome, Verdict},
    consts::*,
    fsm::{self, Fsm, LayerEvent},
    ipcp::Ipcp,
    lcp::{echo_data, Auth, Lcp},
    mppe::{Ccp, Mppe, MppeError, Strength},
};

#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Accepted authentication protocols, preferred first.
    pub auth: Vec<Auth>,
    /// Refuse IP until MPPE is up.
    pub require_mppe: bool,
    /// Offer/accept MPPE at all (and which strengths).
    pub allow_mppe_128: bool,
    pub allow_mppe_40: bool,
    pub mru: u16,
    /// LCP echo: interval, and unanswered echoes that end the link.
    pub echo_interval: Duration,
    pub echo_failures: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The peer presented credentials: decide, then `auth_verdict`.
    Verify(Credentials),
    /// The peer proved who it is; call `set_addresses` to continue.
    Authenticated { user: String },
    /// Wrong user name or password; the link is being closed.
    AuthFailed { user: String },
    /// IP can flow. `encryption`: "mppe-128", "mppe-40" or "none".
    Up { encryption: &'static str },
    /// The link is over: no more IP.
    Down { reason: String },
    /// After `Down`, LCP is done terminating (the peer acknowledged our
    /// Terminate-Request, or it never answered it, or it terminated the
    /// link and a restart interval has passed for our acknowledgement to
    /// reach it, RFC 1661 §3.7): the call below may end now. Ending it at
    /// `Down` would hang the peer up before it reads the Terminate-Request.
    Finished,
}

/// Why a frame carried no IP packet for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    Malformed,
    /// IP before the link is up, or unencrypted when MPPE is required.
    NotReady,
    Decrypt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Establish,
    Authenticate,
    AwaitAddress,
    Network,
    Dead,
}

pub struct Link {
    pub(super) cfg: LinkConfig,
    pub(super) phase: Phase,
    pub(super) lcp: Fsm<Lcp>,
    pub(super) auth: Option<Authenticator>,
    pub(super) ipcp: Option<Fsm<Ipcp>>,
    pub(super) ccp: Option<Fsm<Ccp>>,
    pub(super) mppe_keys: Option<super::mschap::StartKeys>,
    pub(super) tx: Option<Mppe>,
    pub(super) rx: Option<Mppe>,
    pub(super) random: [u8; 16],
    pub(super) up: bool,
    pub(super) next_echo: Option<Instant>,
    pub(super) echoes_unanswered: u32,
    /// `Finished` was reported.
    pub(super) finished: bool,
    pub(super) frames: VecDeque<Vec<u8>>,
    pub(super) events: VecDeque<LinkEvent>,
}

/// Strips the optional address/control field and the (possibly compressed)
/// protocol field: (protocol, payload offset).
pub fn parse_frame(f: &[u8]) -> Option<(u16, usize)> {
    let at = if f.starts_with(&[0xff, 0x03]) { 2 } else { 0 };
    let first = *f.get(at)?;
    if first & 1 == 1 {
        Some((u16::from(first), at + 1)) // PFC: one-byte protocol
    } else {
        let second = *f.get(at + 1)?;
        Some((u16::from_be_bytes([first, second]), at + 2))
    }
}

pub(crate) fn frame(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff, 0x03];
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

impl Link {
    /// A link whose lower layer (the tunnel call) is up. `random`: 32 fresh
    /// random bytes (magic number seed, auth challenge).
    pub fn new(cfg: LinkConfig, random: [u8; 32], now: Instant) -> Link {
        let seed = u32::from_be_bytes(random[..4].try_into().expect("4 bytes"));
        let mut lcp = Lcp::new(cfg.auth.clone(), Vec::new(), seed);
        lcp.mru = cfg.mru;
        let mut link = Link {
            phase: Phase::Establish,
            lcp: Fsm::new(lcp),
            auth: None,
            ipcp: None,
            ccp: None,
            mppe_keys: None,
            tx: None,
            rx: None,
            random: random[16..].try_into().expect("16 bytes"),
            up: false,
            next_echo: None,
            echoes_unanswered: 0,
            finished: false,
            frames: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        };
        link.lcp.open(now);
        link.lcp.up(now);
        link.pump(now);
        link
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// `Finished` was reported: dead and done terminating.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    pub fn poll(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn down(&mut self, reason: String) {
        if self.phase != Phase::Dead {
            self.phase = Phase::Dead;
            self.up = false;
            self.events.push_back(LinkEvent::Down { reason });
        }
    }

    /// After `Down`: `Finished`, once LCP is no longer terminating.
    fn finish_when_terminated(&mut self) {
        if self.phase == Phase::Dead && !self.finished && !self.lcp.is_terminating() {
            self.finished = true;
            self.events.push_back(LinkEvent::Finished);
        }
    }

    /// Ends the link: a Terminate-Request to the peer, `Down` now and
    /// `Finished` once it is acknowledged or its retries run out.
    pub fn close(&mut self, now: Instant, reason: &str) {
        self.down(reason.to_string());
        self.lcp.close(now);
        self.pump(now);
    }

    /// `close` for a peer that stopped answering: one Terminate-Request,
    /// and `Finished` at once (no acknowledgement will come).
    fn close_unanswered(&mut self, now: Instant, reason: &str) {
        self.down(reason.to_string());
        self.lcp.close(now);
        self.lcp.down();
        self.pump(now);
    }

    /// After `Authenticated`: our address, the peer's, and DNS to hand out.
    pub fn set_addresses(
        &mut self,
        now: Instant,
        local: Ipv4Addr,
        peer: Ipv4Addr,
        dns: Vec<Ipv4Addr>,
    ) {
        if self.phase != Phase::AwaitAddress {
            return;
        }
        self.phase = Phase::Network;
        let mut ipcp = Fsm::new(Ipcp::server(local, peer, dns));
        ipcp.open(now);
        ipcp.up(now);
        self.ipcp = Some(ipcp);
        let mppe = self.cfg.allow_mppe_128 || self.cfg.allow_mppe_40;
        if mppe && self.mppe_keys.is_some() {
            let mut ccp = Fsm::new(Ccp::new(
                self.cfg.allow_mppe_128,
                self.cfg.allow_mppe_40,
                false,
            ));
            ccp.open(now);
            ccp.up(now);
            self.ccp = Some(ccp);
        } else if self.cfg.require_mppe {
            self.close(
                now,
                "MPPE is required but the authentication gave no keys (use MS-CHAPv2)",
            );
        }
        self.pump(now);
    }

    /// Collects what the automata queued and reacts to their layer events.
    fn pump(&mut self, now: Instant) {
        while let Some(p) = self.lcp.poll_transmit() {
            self.frames.push_back(frame(PROTO_LCP, &p));
        }
        while let Some(e) = self.lcp.poll() {
            match e {
                LayerEvent::Up if self.phase == Phase::Establish => {
                    self.next_echo = Some(now + self.cfg.echo_interval);
                    match self.lcp.opts.agreed.auth {
                        Some(method) => {
                            self.phase = Phase::Authenticate;
                            let mut a = Authenticator::new(method, self.random);
                            if let Some((proto, p)) = a.start(now) {
                                self.frames.push_back(frame(proto, &p));
                            }
                            self.auth = Some(a);
                        }
                        None => self.close(now, "the peer would not authenticate"),
                    }
                }
                LayerEvent::Down => self.down("the peer renegotiated or terminated LCP".into()),
                LayerEvent::Finished => self.down("LCP finished".into()),
                _ => {}
            }
        }
        let mut ncp_up = true;
        if let Some(ipcp) = &mut self.ipcp {
            while let Some(p) = ipcp.poll_transmit() {
                self.frames.push_back(frame(PROTO_IPCP, &p));
            }
            while ipcp.poll().is_some() {}
            ncp_up &= ipcp.is_open();
        } else {
            ncp_up = false;
        }
        let mut ccp_failed = false;
        if let Some(ccp) = &mut self.ccp {
            while let Some(p) = ccp.poll_transmit() {
                self.frames.push_back(frame(PROTO_CCP, &p));
            }
            while let Some(ev) = ccp.poll() {
                ccp_failed |= ev == LayerEvent::Finished;
            }
            // Opened without an MPPE mode: no encryption was agreed.
            ccp_failed |= ccp.is_open() && ccp.opts.mode().is_none();
            if ccp.is_open() && self.tx.is_none() {
                if let (Some((strength, stateful)), Some(keys)) = (ccp.opts.mode(), &self.mppe_keys)
                {
                    let (tx, rx) = Mppe::server_pair(keys, strength, stateful);
                    self.tx = Some(tx);
                    self.rx = Some(rx);
                }
            }
            if self.cfg.require_mppe {
                ncp_up &= self.tx.is_some();
            }
        } else if self.cfg.require_mppe {
            ncp_up = false;
        }
        // Under require_mppe a call that cannot agree on MPPE ends now (and
        // frees its address) instead of idling without IP.
        if ccp_failed && self.cfg.require_mppe && !self.up && self.phase == Phase::Network {
            self.close(now, "MPPE could not be negotiated, but it is required");
            return;
        }
        if ncp_up && !self.up && self.phase == Phase::Network {
            self.up = true;
            let encryption = match self.ccp.as_ref().and_then(|c| c.opts.mode()) {
                Some((Strength::Bits128, _)) if self.tx.is_some() => "mppe-128",
                Some((Strength::Bits40, _)) if self.tx.is_some() => "mppe-40",
                _ => "none",
            };
            self.events.push_back(LinkEvent::Up { encryption });
        }
        self.finish_when_terminated();
    }

    /// A PPP frame from the peer. `Ok(Some(range))`: an IP packet at
    /// `frame[range]` (decrypted in place).
    pub fn handle_frame(
        &mut self,
        now: Instant,
        f: &mut [u8],
    ) -> Result<Option<std::ops::Range<usize>>, Dropped> {
        if self.phase == Phase::Dead {
            // While terminating, LCP still listens (for the acknowledgement).
            return match parse_frame(f) {
                Some((PROTO_LCP, at)) if self.lcp.is_terminating() => {
                    self.lcp_input(now, &f[at..]);
                    self.pump(now);
                    Ok(None)
                }
                _ => Err(Dropped::NotReady),
            };
        }
        let (proto, at) = parse_frame(f).ok_or(Dropped::Malformed)?;
        let result = match proto {
            PROTO_IPV4 => {
                if self.up && self.tx.is_none() {
                    Ok(Some(at..f.len()))
                } else {
                    Err(Dropped::NotReady)
                }
            }
            PROTO_COMPRESSED => self.decrypt(now, f, at),
            PROTO_LCP => {
                self.lcp_input(now, &f[at..]);
                Ok(None)
            }
            PROTO_PAP | PROTO_CHAP => {
                self.auth_input(now, proto, &f[at..]);
                Ok(None)
            }
            PROTO_IPCP => {
                if let Some(ipcp) = &mut self.ipcp {
                    let _ = ipcp.handle_packet(now, &f[at..]);
                }
                Ok(None)
            }
            PROTO_CCP => {
                self.ccp_input(now, &f[at..]);
                Ok(None)
            }
            _ => {
                // RFC 1661 §5.7: reject what we do not speak, once LCP is open.
                if self.lcp.is_open() {
                    let mut data = proto.to_be_bytes().to_vec();
                    data.extend_from_slice(&f[at..f.len().min(at + 1400)]);
                    let id = self.lcp.fresh_id();
                    self.lcp.send_raw(fsm::packet(PROTO_REJ, id, &data));
                }
                Ok(None)
            }
        };
        self.pump(now);
        result
    }

    fn decrypt(
        &mut self,
        now: Instant,
        f: &mut [u8],
        at: usize,
    ) -> Result<Option<std::ops::Range<usize>>, Dropped> {
        let Some(rx) = &mut self.rx else {
            return Err(Dropped::NotReady);
        };
        match rx.decrypt(&mut f[at..]) {
            Ok(r) => {
                let inner = at + r.start..at + r.end;
                let (proto, off) = parse_frame(&f[inner.clone()]).ok_or(Dropped::Malformed)?;
                if proto == PROTO_IPV4 && self.up {
                    Ok(Some(inner.start + off..inner.end))
                } else {
                    Err(Dropped::NotReady)
                }
            }
            Err(MppeError::NeedReset) => {
                if let Some(ccp) = &mut self.ccp {
                    let id = ccp.fresh_id();
                    ccp.send_raw(fsm::packet(RESET_REQ, id, &[]));
                }
                Err(Dropped::Decrypt)
            }
            Err(MppeError::Desync) => {
                self.close(now, "too many MPPE packets that break the rules");
                Err(Dropped::Decrypt)
            }
            Err(_) => Err(Dropped::Decrypt),
        }
    }

    fn lcp_input(&mut self, now: Instant, p: &[u8]) {
        if let Err((code, id, data)) = self.lcp.handle_packet(now, p) {
            match code {
                ECHO_REQ if self.lcp.is_open() => {
                    let extra = data.get(4..).unwrap_or_default();
                    let reply =
                        fsm::packet(ECHO_REPLY, id, &echo_data(self.lcp.opts.magic(), extra));
                    self.lcp.send_raw(reply);
                }
                ECHO_REPLY => self.echoes_unanswered = 0,
                DISCARD_REQ => {}
                PROTO_REJ => {
                    let rejected = data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                    if rejected == Some(PROTO_CCP) {
                        if self.cfg.require_mppe {
                            self.close(now, "the peer refuses CCP, but MPPE is required");
                        } else {
                            self.ccp = None; // no compression: stop asking
                        }
                    }
                }
                _ => self.lcp.code_reject(p),
            }
        }
    }

    fn auth_input(&mut self, now: Instant, proto: u16, p: &[u8]) {
        let Some(auth) = &mut self.auth else { return };
        if self.phase != Phase::Authenticate {
            // Our Success/Failure was lost: the peer asks again.
            if let Some((rproto, reply)) = auth.repeat(proto, p) {
                self.frames.push_back(frame(rproto, &reply));
            }
            return;
        }
        match auth.handle_packet(proto, p) {
            Some(Ok(creds)) => self.events.push_back(LinkEvent::Verify(creds)),
            Some(Err(Malformed)) => self.auth_verdict(
                now,
                Verdict::Reject {
                    message: Some("E=691 R=0 V=3 M=malformed response".into()),
                },
            ),
            None => {}
        }
    }

    /// The decision on the credentials of the last `Verify` event (from
    /// the gateway's users or a RADIUS server): the peer hears it, and
    /// `Authenticated` or `AuthFailed` follows.
    pub fn auth_verdict(&mut self, now: Instant, verdict: Verdict) {
        if self.phase != Phase::Authenticate {
            return;
        }
        let Some(auth) = &mut self.auth else { return };
        let Some(((rproto, reply), outcome)) = auth.decide(verdict) else {
            return;
        };
        self.frames.push_back(frame(rproto, &reply));
        match outcome {
            Outcome::Success { user, keys } => {
                self.mppe_keys = keys;
                self.phase = Phase::AwaitAddress;
                self.events.push_back(LinkEvent::Authenticated { user });
            }
            Outcome::Failure { user } => {
                self.events.push_back(LinkEvent::AuthFailed { user });
                self.close(now, "authentication failed");
            }
        }
        self.pump(now);
    }

    fn ccp_input(&mut self, now: Instant, p: &[u8]) {
        let Some(ccp) = &mut self.ccp else {
            // No CCP here (MPPE off, or before the network phase).
            if self.lcp.is_open() && self.phase == Phase::Network {
                let mut data = PROTO_CCP.to_be_bytes().to_vec();
                data.extend_from_slice(p);
                let id = self.lcp.fresh_id();
                self.lcp.send_raw(fsm::packet(PROTO_REJ, id, &data));
            }
            return;
        };
        if let Err((code, id, _)) = ccp.handle_packet(now, p) {
            match code {
                RESET_REQ => {
                    if let Some(tx) = &mut self.tx {
                        tx.reset_requested();
                    }
                    ccp.send_raw(fsm::packet(RESET_ACK, id, &[]));
                }
                RESET_ACK => {}
                _ => ccp.code_reject(p),
            }
        }
    }

    /// Frames an IP packet for the peer (encrypted when MPPE is on).
    /// False when the link cannot carry it (not up).
    pub fn encap_ip(&mut self, ip: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.up {
            return false;
        }
        out.clear();
        out.extend_from_slice(&[0xff, 0x03]);
        match &mut self.tx {
            Some(tx) => {
                out.extend_from_slice(&PROTO_COMPRESSED.to_be_bytes());
                tx.encrypt_parts(&[&PROTO_IPV4.to_be_bytes(), ip], out);
            }
            None => {
                out.extend_from_slice(&PROTO_IPV4.to_be_bytes());
                out.extend_from_slice(ip);
            }
        }
        true
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Dead {
            return self.lcp.poll_timeout();
        }
        [
            self.lcp.poll_timeout(),
            self.auth.as_ref().and_then(Authenticator::poll_timeout),
            self.ipcp.as_ref().and_then(Fsm::poll_timeout),
            self.ccp.as_ref().and_then(Fsm::poll_timeout),
            self.next_echo,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            // Only a terminating LCP's restart timer is left.
            self.lcp.handle_timeout(now);
            self.pump(now);
            return;
        }
        self.lcp.handle_timeout(now);
        if let Some(ipcp) = &mut self.ipcp {
            ipcp.handle_timeout(now);
        }
        if let Some(ccp) = &mut self.ccp {
            ccp.handle_timeout(now);
        }
        if let Some(a) = &mut self.auth {
            match a.handle_timeout(now) {
                Ok(Some((proto, p))) => self.frames.push_back(frame(proto, &p)),
                Ok(None) => {}
                Err(_) => self.close(now, "the peer did not answer the authentication challenge"),
            }
        }
        if self.next_echo.is_some_and(|t| now >= t) {
            if self.echoes_unanswered >= self.cfg.echo_failures {
                self.close_unanswered(now, "the peer stopped answering LCP echo requests");
                return;
            }
            self.echoes_unanswered += 1;
            let id = self.lcp.fresh_id();
            self.lcp.send_raw(fsm::packet(
                ECHO_REQ,
                id,
                &echo_data(self.lcp.opts.magic(), &[]),
            ));
            self.next_echo = Some(now + self.cfg.echo_interval);
        }
        self.pump(now);
    }
}

#[cfg(test)]
mod tests {
    //! The gateway's link against a minimal peer built from the same parts
    //! (LCP and IPCP client-side, CHAP responses, MPPE client keys).
    use super::*;
    use crate::ppp::{client::Client, mschap::NtHash};

    const GW: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 9);

    fn cfg(require_mppe: bool) -> LinkConfig {
        LinkConfig {
            auth: vec![Auth::MsChapV2],
            require_mppe,
            allow_mppe_128: require_mppe,
            allow_mppe_40: false,
            mru: 1400,
            echo_interval: Duration::from_secs(10),
            echo_failures: 3,
        }
    }

    fn users(u: &str) -> Option<NtHash> {
        (u == "alice").then(|| NtHash::of_password("pw-alice-1"))
    }

    fn peer(now: Instant, password: &str, mppe: bool) -> Client {
        let mut random = [5u8; 20];
        random[16..].copy_from_slice(&99u32.to_be_bytes());
        Client::new(now, "alice", password, mppe, random)
    }

    /// Runs both ends until quiet; answers `Authenticated` with addresses.
    fn converse(link: &mut Link, peer: &mut Client, now: Instant) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        for _ in 0..50 {
            while let Some(mut f) = link.poll_transmit() {
                peer.handle_frame(now, &mut f);
            }
            let sent: Vec<Vec<u8>> = std::iter::from_fn(|| peer.poll_transmit()).collect();
            let frames: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
            if !frames.is_empty() {
                crate::fuzz_seed::save_frames("ppp_link", &[], &frames);
            }
            for mut f in sent {
                let _ = link.handle_frame(now, &mut f);
            }
            while let Some(e) = link.poll() {
                match &e {
                    LinkEvent::Verify(c) => {
                        link.auth_verdict(now, c.check(users(c.user()).as_ref()));
                        continue;
                    }
                    LinkEvent::Authenticated { .. } => {
                        link.set_addresses(now, GW, CLIENT, vec![Ipv4Addr::new(172, 16, 10, 2)]);
                    }
                    _ => {}
                }
                events.push(e);
            }
        }
        events
    }

    fn ip(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(b"data");
        p
    }

    #[test]
    fn a_carried_link_goes_on_with_its_mppe_streams_and_echoes() {
        let now = Instant::now();
        let mut link = Link::new(cfg(true), [1; 32], now);
        let mut peer = peer(now, "pw-alice-1", true);
        converse(&mut link, &mut peer, now);
        assert!(link.is_up());
        let exchange = |link: &mut Link, peer: &mut Client, n: u8| {
            for i in 0..n {
                let p = ip(CLIENT, Ipv4Addr::new(172, 16, 10, 2 + i));
                let mut f = peer.ip_frame(&p);
                let r = link.handle_frame(now, &mut f).unwrap().unwrap();
                assert_eq!(&f[r], &p[..]);
                let mut out = Vec::new();
                assert!(link.encap_ip(&p, &mut out));
                peer.handle_frame(now, &mut out);
            }
            assert_eq!(peer.take_ip().len(), usize::from(n));
        };
        exchange(&mut link, &mut peer, 7);
        assert!(
            Link::new(cfg(true), [1; 32], now).carry().is_none(),
            "not up yet"
        );
        let carried = link.carry().expect("an idle link that is up");
        let json = serde_json::to_string(&carried).unwrap();
        let carried: super::super::carry::LinkCarry = serde_json::from_str(&json).unwrap();
        let later = now + Duration::from_secs(1);
        let mut resumed = Link::resume(cfg(true), &carried, later).unwrap();
        assert!(resumed.is_up() && resumed.poll().is_none());
        // Both MPPE directions continue where they were.
        exchange(&mut resumed, &mut peer, 9);
        // LCP echoes are answered and sent (the peer is the same).
        resumed.handle_timeout(later + Duration::from_secs(10));
        let mut echo = resumed.poll_transmit().expect("an echo request");
        assert_eq!(&echo[2..4], &PROTO_LCP.to_be_bytes());
        peer.handle_frame(later, &mut echo);
        while let Some(mut f) = peer.poll_transmit() {
            let _ = resumed.handle_frame(later, &mut f);
        }
        assert!(resumed.is_up());
    }

    #[test]
    fn mschapv2_with_mppe_128_then_ip_both_ways() {
        let now = Instant::now();
        let mut link = Link::new(cfg(true), [1; 32], now);
        let mut peer = peer(now, "pw-alice-1", true);
        let events = converse(&mut link, &mut peer, now);
        assert_eq!(
            events,
            vec![
                LinkEvent::Authenticated {
                    user: "alice".into()
                },
                LinkEvent::Up {
                    encryption: "mppe-128"
                }
            ]
        );
        assert_eq!(peer.address(), Some(CLIENT));
        assert_eq!(peer.gateway_dns()[0], Ipv4Addr::new(172, 16, 10, 2));
        // Up: the peer's packets decrypt to IP; ours decrypt at the peer.
        for i in 0..20 {
            let p = ip(CLIENT, Ipv4Addr::new(172, 16, 10, 2 + i));
            let mut f = peer.ip_frame(&p);
            let r = link.handle_frame(now, &mut f).unwrap().unwrap();
            assert_eq!(&f[r], &p[..]);
            let mut out = Vec::new();
            assert!(link.encap_ip(&p, &mut out));
            assert_eq!(&out[2..4], &PROTO_COMPRESSED.to_be_bytes());
            peer.handle_frame(now, &mut out);
        }
        assert_eq!(peer.take_ip().len(), 20);
        // Plain IP is refused on an encrypted link.
        let mut plain = frame(PROTO_IPV4, &ip(CLIENT, GW));
        assert_eq!(link.handle_frame(now, &mut plain), Err(Dropped::NotReady));
    }

    #[test]
    fn without_mppe_ip_flows_in_the_clear() {
        let now = Instant::now();
        let mut link = Link::new(cfg(false), [2; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        let events = converse(&mut link, &mut peer, now);
        assert!(
            events.contains(&LinkEvent::Up { encryption: "none" }),
            "{events:?}"
        );
        let p = ip(CLIENT, GW);
        let mut f = frame(PROTO_IPV4, &p);
        let r = link.handle_frame(now, &mut f).unwrap().unwrap();
        assert_eq!(&f[r], &p[..]);
    }

    #[test]
    fn a_peer_that_will_not_agree_on_mppe_ends_the_link_when_it_is_required() {
        let now = Instant::now();
        let mut link = Link::new(cfg(true), [5; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        let events = converse(&mut link, &mut peer, now);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, LinkEvent::Down { reason } if reason.contains("MPPE"))),
            "{events:?}"
        );
        assert!(!link.is_up() && link.is_dead());
    }

    #[test]
    fn a_wrong_password_ends_the_link() {
        let now = Instant::now();
        let mut link = Link::new(cfg(true), [3; 32], now);
        let mut peer = peer(now, "not-it", true);
        let events = converse(&mut link, &mut peer, now);
        assert_eq!(
            events[0],
            LinkEvent::AuthFailed {
                user: "alice".into()
            }
        );
        assert!(matches!(events[1], LinkEvent::Down { .. }));
        assert!(link.is_dead());
    }

    #[test]
    fn an_unanswering_peer_is_dropped_by_lcp_echo() {
        let mut now = Instant::now();
        let mut link = Link::new(cfg(false), [4; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        converse(&mut link, &mut peer, now);
        assert!(link.is_up());
        // The peer goes silent.
        while !link.is_dead() {
            now = link.poll_timeout().unwrap();
            link.handle_timeout(now);
            while link.poll_transmit().is_some() {}
        }
        let ev: Vec<_> = std::iter::from_fn(|| link.poll()).collect();
        // No acknowledgement will come: finished at once.
        assert!(
            matches!(&ev[..], [LinkEvent::Down { reason }, LinkEvent::Finished] if reason.contains("echo")),
            "{ev:?}"
        );
    }

    /// The LCP codes of the frames `link` sends.
    fn lcp_codes(link: &mut Link) -> Vec<u8> {
        std::iter::from_fn(|| link.poll_transmit())
            .filter_map(|f| match parse_frame(&f) {
                Some((PROTO_LCP, at)) => Some(f[at]),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_closed_link_finishes_when_the_peer_acknowledges() {
        let now = Instant::now();
        let mut link = Link::new(cfg(false), [6; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        converse(&mut link, &mut peer, now);
        assert!(link.is_up());
        link.close(now, "killed");
        let ev: Vec<_> = std::iter::from_fn(|| link.poll()).collect();
        assert_eq!(
            ev,
            [LinkEvent::Down {
                reason: "killed".into()
            }]
        );
        // No IP once down, however the call below carries on.
        let mut ip = frame(PROTO_IPV4, &[0x45; 20]);
        assert_eq!(link.handle_frame(now, &mut ip), Err(Dropped::NotReady));
        // The peer reads the Terminate-Request and acknowledges it.
        let later = now + Duration::from_millis(5);
        while let Some(mut f) = link.poll_transmit() {
            peer.handle_frame(later, &mut f);
        }
        assert!(link.poll().is_none(), "not finished before the ack");
        for mut f in std::iter::from_fn(|| peer.poll_transmit()).collect::<Vec<_>>() {
            let _ = link.handle_frame(later, &mut f);
        }
        assert_eq!(link.poll(), Some(LinkEvent::Finished));
        assert_eq!(link.poll_timeout(), None, "nothing left to time");
    }

    #[test]
    fn a_closed_link_finishes_when_its_terminate_requests_run_out() {
        let start = Instant::now();
        let mut link = Link::new(cfg(false), [7; 32], start);
        let mut peer = peer(start, "pw-alice-1", false);
        converse(&mut link, &mut peer, start);
        link.close(start, "killed");
        let mut sent = lcp_codes(&mut link);
        let mut now = start;
        while !link.events.contains(&LinkEvent::Finished) {
            now = link
                .poll_timeout()
                .expect("a restart timer while terminating");
            link.handle_timeout(now);
            sent.extend(lcp_codes(&mut link));
        }
        assert_eq!(sent, [TERM_REQ; MAX_TERMINATE as usize]);
        assert_eq!(now - start, RESTART_INTERVAL * MAX_TERMINATE);
    }

    #[test]
    fn a_link_the_peer_terminates_finishes_a_restart_interval_after_the_ack() {
        let now = Instant::now();
        let mut link = Link::new(cfg(false), [8; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        converse(&mut link, &mut peer, now);
        peer.close(now);
        for mut f in std::iter::from_fn(|| peer.poll_transmit()).collect::<Vec<_>>() {
            let _ = link.handle_frame(now, &mut f);
        }
        assert!(matches!(link.poll(), Some(LinkEvent::Down { .. })));
        assert_eq!(lcp_codes(&mut link), [TERM_ACK]);
        assert_eq!(link.poll(), None);
        link.handle_timeout(now + RESTART_INTERVAL);
        assert_eq!(link.poll(), Some(LinkEvent::Finished));
    }

    #[test]
    fn unknown_protocols_are_rejected_and_garbage_is_dropped() {
        let now = Instant::now();
        let mut link = Link::new(cfg(false), [5; 32], now);
        let mut peer = peer(now, "pw-alice-1", false);
        converse(&mut link, &mut peer, now);
        let mut f = frame(0x8057, b"\x01\x01\x00\x04"); // IPv6CP
        assert_eq!(link.handle_frame(now, &mut f), Ok(None));
        let rej = link.poll_transmit().unwrap();
        assert_eq!(&rej[2..4], &PROTO_LCP.to_be_bytes());
        assert_eq!(rej[4], PROTO_REJ);
        // Too short for a protocol field: dropped as malformed.
        for bad in [&[][..], &[0xff, 0x03], &[0xc0]] {
            let mut b = bad.to_vec();
            assert_eq!(
                link.handle_frame(now, &mut b),
                Err(Dropped::Malformed),
                "{bad:?}"
            );
        }
        // A lone 0xff is a compressed (odd) protocol field of its own: an
        // unknown protocol, rejected like any other.
        assert_eq!(link.handle_frame(now, &mut [0xff]), Ok(None));
        assert_eq!(link.poll_transmit().unwrap()[4], PROTO_REJ);
        assert!(link.is_up(), "garbage does not take the link down");
    }
}

#[cfg(test)]
mod unreliable {
    //! The link over a lossy, reordering tunnel (GRE gives no delivery
    //! guarantees): negotiation still converges, via retransmits. (Duplicated
    //! Configure-Requests force an LCP renegotiation by RFC 1661 design, which
    //! the link treats as the end of the session; the automaton's own test
    //! covers duplication.)
    use super::*;
    use crate::ppp::{auth::chap_response, mschap::NtHash};

    fn users(u: &str) -> Option<NtHash> {
        (u == "alice").then(|| NtHash::of_password("pw-alice-1"))
    }

    /// A scrambled channel: drops every 5th frame and delivers each batch in
    /// reverse order.
    fn scramble(frames: Vec<Vec<u8>>, n: &mut usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for f in frames {
            *n += 1;
            if (*n).is_multiple_of(5) {
                continue;
            }
            out.push(f);
        }
        out.reverse();
        out
    }

    #[test]
    fn negotiation_converges_through_loss_and_reordering() {
        let mut now = Instant::now();
        let cfg = LinkConfig {
            auth: vec![Auth::MsChapV2],
            require_mppe: false,
            allow_mppe_128: false,
            allow_mppe_40: false,
            mru: 1400,
            echo_interval: Duration::from_secs(30),
            echo_failures: 3,
        };
        let mut link = Link::new(cfg, [9; 32], now);
        // The peer: LCP and IPCP automata plus CHAP answers.
        let mut lcp = Fsm::new(Lcp::new(vec![], vec![Auth::MsChapV2], 77));
        let mut ipcp = Fsm::new(Ipcp::client());
        lcp.open(now);
        lcp.up(now);
        let (mut n, mut ipcp_started) = (0usize, false);
        let mut last_response: Option<Vec<u8>> = None;
        for step in 0..200 {
            let from_link: Vec<_> = std::iter::from_fn(|| link.poll_transmit()).collect();
            let mut to_link = Vec::new();
            for mut f in scramble(from_link, &mut n) {
                let (proto, at) = parse_frame(&f).unwrap();
                match proto {
                    PROTO_LCP => {
                        let _ = lcp.handle_packet(now, &f[at..]);
                    }
                    PROTO_CHAP if f[at] == CHAP_CHALLENGE => {
                        let r = chap_response(&f[at..], "alice", "pw-alice-1", [4; 16]).unwrap();
                        to_link.push(frame(PROTO_CHAP, &r));
                        last_response = Some(frame(PROTO_CHAP, &r));
                    }
                    PROTO_CHAP if f[at] == CHAP_SUCCESS && !ipcp_started => {
                        ipcp_started = true;
                        ipcp.open(now);
                        ipcp.up(now);
                    }
                    PROTO_IPCP => {
                        let _ = ipcp.handle_packet(now, &f[at..]);
                    }
                    _ => {
                        let _ = &mut f;
                    }
                }
            }
            while let Some(p) = lcp.poll_transmit() {
                to_link.push(frame(PROTO_LCP, &p));
            }
            while let Some(p) = ipcp.poll_transmit() {
                to_link.push(frame(PROTO_IPCP, &p));
            }
            for mut f in scramble(to_link, &mut n) {
                let _ = link.handle_frame(now, &mut f);
            }
            while let Some(e) = link.poll() {
                if let LinkEvent::Verify(c) = &e {
                    link.auth_verdict(now, c.check(users(c.user()).as_ref()));
                }
                if let LinkEvent::Authenticated { .. } = e {
                    link.set_addresses(
                        now,
                        Ipv4Addr::new(10, 99, 0, 1),
                        Ipv4Addr::new(10, 99, 0, 9),
                        vec![],
                    );
                }
            }
            if link.is_up() && ipcp.is_open() {
                assert_eq!(ipcp.opts.local, Ipv4Addr::new(10, 99, 0, 9));
                return;
            }
            // Several exchanges per restart interval (a round trip is far
            // shorter); then time passes and timers retransmit what was lost.
            if step % 4 != 3 {
                continue;
            }
            // The peer repeats its Response until it hears Success.
            if !ipcp_started {
                if let Some(r) = &last_response {
                    let mut r = r.clone();
                    let _ = link.handle_frame(now, &mut r);
                }
            }
            now += RESTART_INTERVAL;
            link.handle_timeout(now);
            lcp.handle_timeout(now);
            ipcp.handle_timeout(now);
        }
        panic!(
            "no convergence: link up {}, peer LCP {:?}, peer IPCP {:?}, link LCP {:?}, response {}",
            link.is_up(),
            lcp.state(),
            ipcp.state(),
            link.lcp.state(),
            last_response.is_some()
        );
    }
}
