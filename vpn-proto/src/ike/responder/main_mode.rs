//! Main Mode with a pre-shared key (RFC 2409 §5.4), responder side:
//! MM1 → MM2 (proposal, NAT-T and DPD vendor IDs), MM3 → MM4 (DH, nonces,
//! NAT-D), MM5 → MM6 (identities and hashes, encrypted).
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use subtle::ConstantTimeEq;

use super::{
    seal::{open, unprotected_notify},
    Config, Endpoints, Host, IkeError, IkeEvent, IkeSa, KeSent, NatT, Refused, SaSent, State, Up,
};
use crate::ike::{
    consts::*,
    keys::{self, Phase1Inputs},
    message::{self, split, Chain, Header, Notify, SaPayload},
    natt,
    proposal::{choose_phase1, describe_offer},
};

/// Nonce length we send (RFC 2409 allows 8 to 256 bytes).
const NONCE_LEN: usize = 32;

impl IkeSa {
    /// Answers a first Main Mode message (MM1), or refuses it with a reason
    /// and, where the client deserves one, an unprotected notification.
    pub fn respond(
        cfg: Arc<Config>,
        now: Instant,
        ends: Endpoints,
        msg: &[u8],
        host: &mut dyn Host,
    ) -> Result<IkeSa, Refused> {
        let malformed = |why: &str| Refused {
            error: IkeError::Malformed,
            reason: why.to_string(),
            reply: None,
        };
        let h = Header::decode(msg).map_err(|_| malformed("not an ISAKMP message"))?;
        let msg = &msg[..h.length as usize];
        let refuse = |error, kind: u16, reason: String| Refused {
            error,
            reason,
            reply: Some(unprotected_notify(h.icookie, h.rcookie, kind)),
        };
        if h.exchange == EXCH_AGGRESSIVE {
            // docs/decisions.md #40: Aggressive Mode exposes a PSK hash to
            // anyone who asks; refused.
            return Err(refuse(
                IkeError::Unexpected,
                N_INVALID_EXCHANGE_TYPE,
                "Aggressive Mode is not supported (use Main Mode: clear the client's IPsec identifier)".into(),
            ));
        }
        if h.exchange != EXCH_MAIN
            || h.rcookie != [0; 8]
            || h.message_id != 0
            || h.flags & FLAG_ENCRYPTED != 0
        {
            return Err(malformed("not a first Main Mode message"));
        }
        let (payloads, _) =
            split(h.next, &msg[HEADER_LEN..]).map_err(|_| malformed("bad payload chain"))?;
        let Some(sa) = payloads.iter().find(|p| p.kind == PL_SA) else {
            return Err(malformed("no SA payload"));
        };
        let offer = SaPayload::decode(sa.body).map_err(|_| malformed("bad SA payload"))?;
        let Some(choice) = choose_phase1(&offer, cfg.legacy) else {
            return Err(refuse(
                IkeError::NoProposal,
                N_NO_PROPOSAL_CHOSEN,
                format!(
                    "no acceptable Phase 1 proposal (legacy {}): {}",
                    if cfg.legacy { "on" } else { "off" },
                    describe_offer(&offer)
                ),
            ));
        };
        let vids: Vec<&[u8]> = payloads
            .iter()
            .filter(|p| p.kind == PL_VENDOR)
            .map(|p| p.body)
            .collect();
        let natt = natt::variant(&vids);
        let dpd = vids.contains(&&VID_DPD[..]);
        let mut rcookie = [0u8; 8];
        while rcookie == [0; 8] {
            host.random(&mut rcookie);
        }
        let mut sa = IkeSa {
            cfg,
            icookie: h.icookie,
            rcookie,
            ends,
            state: State::Dead,
            natt: natt.map(|(v, _)| v),
            peer_behind_nat: false,
            we_behind_nat: false,
            dpd,
            initial_contact: vids.contains(&&VID_MS_INITIAL_CONTACT[..]),
            created: now,
            expires: None,
            last_in: msg.to_vec(),
            last_out: None,
            quick: HashMap::new(),
            initiated: HashMap::new(),
            done: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        let mut c = Chain::default();
        c.add(
            PL_SA,
            &message::sa_answer(choice.proposal, PROTO_ISAKMP, &[], &choice.transform),
        );
        if let Some((_, vid)) = natt {
            c.add(PL_VENDOR, &vid);
        }
        if dpd {
            c.add(PL_VENDOR, &VID_DPD);
        }
        let m = sa.plain(EXCH_MAIN, 0, &c);
        sa.send_main(m);
        sa.state = State::SaSent(Box::new(SaSent {
            choice,
            sai_b: sa_body(sa.last_in.as_slice()).unwrap_or_default(),
        }));
        Ok(sa)
    }

    fn send_main(&mut self, m: Vec<u8>) {
        self.last_out = Some(m.clone());
        self.out.push_back(m);
    }

    /// MM3 → MM4.
    pub(super) fn main_mode_ke(
        &mut self,
        h: &Header,
        msg: &[u8],
        host: &mut dyn Host,
    ) -> Result<(), IkeError> {
        let State::SaSent(s) = &self.state else {
            return Err(IkeError::Unexpected);
        };
        let (payloads, _) = split(h.next, &msg[HEADER_LEN..]).map_err(|_| IkeError::Malformed)?;
        let find = |k| payloads.iter().find(|p| p.kind == k).map(|p| p.body);
        let (Some(gxi), Some(ni)) = (find(PL_KE), find(PL_NONCE)) else {
            return Err(IkeError::Malformed);
        };
        if !(8..=256).contains(&ni.len()) {
            return Err(IkeError::Malformed);
        }
        let algs = s.choice.algs;
        let (x, gxr) = algs.group.keypair(|b| host.random(b));
        let gxy = algs.group.shared(&x, gxi).ok_or(IkeError::Malformed)?;
        let mut nr = vec![0u8; NONCE_LEN];
        host.random(&mut nr);
        let hash = algs.hash;
        let (ours, theirs) = (
            natt::natd(hash, &self.icookie, &self.rcookie, self.ends.local),
            natt::natd(hash, &self.icookie, &self.rcookie, self.ends.remote),
        );
        let mut c = Chain::default();
        c.add(PL_KE, &gxr).add(PL_NONCE, &nr);
        if let Some(v) = self.natt {
            let kind = natt::natd_payload(v);
            let natds: Vec<&[u8]> = payloads
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.body)
                .collect();
            if natds.len() >= 2 {
                // The first is what the client hashed for us, the rest its own addresses.
                self.we_behind_nat = natds[0] != ours.as_slice();
                self.peer_behind_nat = !natds[1..].contains(&theirs.as_slice());
                c.add(kind, &theirs).add(kind, &ours);
            } else {
                self.natt = None; // announced but not used: plain IKE and raw ESP
            }
        }
        let keys = keys::phase1(
            hash,
            algs.cipher,
            &Phase1Inputs {
                psk: &self.cfg.psk,
                ni,
                nr: &nr,
                gxy: &gxy,
                gxi,
                gxr: &gxr,
                cky_i: &self.icookie,
                cky_r: &self.rcookie,
            },
        );
        let next = KeSent {
            algs,
            lifetime: s.choice.lifetime,
            sai_b: s.sai_b.clone(),
            gxi: gxi.to_vec(),
            gxr,
            keys,
        };
        let m = self.plain(EXCH_MAIN, 0, &c);
        self.send_main(m);
        self.state = State::KeSent(Box::new(next));
        Ok(())
    }

    /// MM5 → MM6: the client proves it knows the PSK; we answer in kind.
    pub(super) fn main_mode_auth(
        &mut self,
        now: Instant,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), IkeError> {
        let State::KeSent(k) = &self.state else {
            return Err(IkeError::Unexpected);
        };
        let algs = k.algs;
        let Some((plain, last)) = open(algs.cipher, &k.keys.enc, &k.keys.iv, msg) else {
            return Err(IkeError::Malformed);
        };
        let auth_failed = |sa: &mut IkeSa, kind: u16, why: &str| {
            sa.refuse_unprotected(kind);
            sa.die(why);
            Err(IkeError::AuthFailed)
        };
        let Ok((payloads, _)) = split(h.next, &plain) else {
            // What a wrong PSK looks like: the payloads decrypt to noise.
            return auth_failed(
                self,
                N_PAYLOAD_MALFORMED,
                "MM5 did not decrypt: wrong pre-shared key?",
            );
        };
        let find = |k| payloads.iter().find(|p| p.kind == k).map(|p| p.body);
        let (Some(idi), Some(hash_i)) = (find(PL_ID), find(PL_HASH)) else {
            return auth_failed(
                self,
                N_PAYLOAD_MALFORMED,
                "MM5 did not decrypt: wrong pre-shared key?",
            );
        };
        let want = keys::main_mode_hash(
            algs.hash,
            &k.keys.skeyid,
            &k.gxi,
            &k.gxr,
            &self.icookie,
            &self.rcookie,
            &k.sai_b,
            idi,
            true,
        );
        if !bool::from(want.as_slice().ct_eq(hash_i)) {
            return auth_failed(
                self,
                N_INVALID_HASH_INFORMATION,
                "HASH_I did not match: wrong pre-shared key",
            );
        }
        if payloads
            .iter()
            .filter(|p| p.kind == PL_NOTIFY)
            .filter_map(|p| Notify::decode(p.body).ok())
            .any(|n| n.kind == N_INITIAL_CONTACT)
        {
            self.initial_contact = true;
        }
        let idr = message::identity(
            ID_IPV4_ADDR,
            IPPROTO_UDP,
            500,
            &self.ends.local.ip().octets(),
        );
        let hash_r = keys::main_mode_hash(
            algs.hash,
            &k.keys.skeyid,
            &k.gxi,
            &k.gxr,
            &self.icookie,
            &self.rcookie,
            &k.sai_b,
            &idr,
            false,
        );
        let mut c = Chain::default();
        c.add(PL_ID, &idr).add(PL_HASH, &hash_r);
        let (m, phase1_iv) = self.sealed(algs.cipher, &k.keys.enc, &last, EXCH_MAIN, 0, &c);
        // A proposed lifetime of 0 (strongSwan with `rekey=no`) means none.
        let life = k
            .lifetime
            .filter(|&s| s > 0)
            .map_or(self.cfg.max_phase1_life, Duration::from_secs)
            .min(self.cfg.max_phase1_life);
        self.expires = Some(now + life);
        self.send_main(m);
        let State::KeSent(k) = std::mem::replace(&mut self.state, State::Dead) else {
            unreachable!()
        };
        self.state = State::Up(Box::new(Up {
            algs,
            keys: k.keys,
            phase1_iv,
        }));
        self.events.push_back(IkeEvent::Established {
            initial_contact: self.initial_contact,
        });
        Ok(())
    }

    /// An unprotected notification (before keys are agreed).
    fn refuse_unprotected(&mut self, kind: u16) {
        let m = unprotected_notify(self.icookie, self.rcookie, kind);
        self.out.push_back(m);
    }
}

/// The body of MM1's SA payload (SAi_b in the hashes).
fn sa_body(mm1: &[u8]) -> Option<Vec<u8>> {
    let h = Header::decode(mm1).ok()?;
    let (p, _) = split(h.next, &mm1[HEADER_LEN..h.length as usize]).ok()?;
    p.iter().find(|p| p.kind == PL_SA).map(|p| p.body.to_vec())
}

impl NatT {
    pub fn name(self) -> &'static str {
        match self {
            NatT::Rfc3947 => "rfc3947",
            NatT::Draft => "draft",
        }
    }
}
