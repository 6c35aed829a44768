//! Quick Mode, responder side (RFC 2409 §5.5): an ESP transport SA pair
//! for the client's L2TP traffic. QM1 → QM2 hands the keys out at once
//! (the inbound SA is usable); QM3 confirms the client installed its side.
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::{
    seal::{open, open_hashed},
    ChildSa, ChildTemplate, Host, IkeError, IkeEvent, IkeSa, Quick, State, MAX_QUICK_IN_FLIGHT,
};
use crate::ike::{
    consts::*,
    keys,
    message::{self, split, Chain, Header, Identity, SaPayload},
    natt,
    proposal::{choose_phase2, describe_offer, Encap},
};

const NONCE_LEN: usize = 32;

impl IkeSa {
    pub(super) fn quick_mode(
        &mut self,
        now: Instant,
        h: &Header,
        msg: &[u8],
        host: &mut dyn Host,
    ) -> Result<(), IkeError> {
        let mid = h.message_id;
        if mid == 0 {
            return Err(IkeError::Malformed);
        }
        if let Some(q) = self.quick.get(&mid) {
            if msg == q.qm1.as_slice() {
                let again = q.qm2.clone();
                self.out.push_back(again);
                return Ok(());
            }
            return self.quick_mode_done(h, msg);
        }
        if self.done.contains(&mid) {
            return Ok(()); // a late duplicate of a finished exchange
        }
        if self.quick.len() >= MAX_QUICK_IN_FLIGHT {
            return Err(IkeError::Busy);
        }
        let State::Up(up) = &self.state else {
            return Err(IkeError::Unexpected);
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let iv = keys::exchange_iv(hash, cipher.block(), &up.phase1_iv, mid);
        let (plain, last) = open_hashed(up, &iv, h, msg, &[])?;
        let (payloads, _) = split(h.next, &plain).map_err(|_| IkeError::Malformed)?;
        let find = |k| payloads.iter().find(|p| p.kind == k).map(|p| p.body);
        let (Some(sa), Some(ni)) = (find(PL_SA), find(PL_NONCE)) else {
            return Err(IkeError::Malformed);
        };
        let offer = SaPayload::decode(sa).map_err(|_| IkeError::Malformed)?;
        let udp = self.nat_detected();
        let Some(choice) = choose_phase2(&offer, self.cfg.legacy, udp) else {
            let why = format!(
                "no acceptable Quick Mode proposal (ESP transport{}, legacy {}): {}",
                if udp { " in UDP" } else { "" },
                if self.cfg.legacy { "on" } else { "off" },
                describe_offer(&offer)
            );
            self.notify_protected(N_NO_PROPOSAL_CHOSEN, host);
            log_reason(&mut self.events, why);
            return Err(IkeError::NoProposal);
        };
        // Traffic selectors: the client's L2TP port to ours (UDP 1701).
        let ids: Vec<&[u8]> = payloads
            .iter()
            .filter(|p| p.kind == PL_ID)
            .map(|p| p.body)
            .collect();
        let mut client_port = 0;
        if !ids.is_empty() {
            let (Some(Ok(ci)), Some(Ok(cr))) = (
                ids.first().map(|b| Identity::decode(b)),
                ids.get(1).map(|b| Identity::decode(b)),
            ) else {
                return Err(IkeError::Malformed);
            };
            let udp_or_any = |p: u8| p == IPPROTO_UDP || p == 0;
            if !udp_or_any(ci.protocol)
                || !udp_or_any(cr.protocol)
                || !(cr.port == L2TP_PORT || cr.port == 0)
            {
                self.notify_protected(N_INVALID_ID_INFORMATION, host);
                log_reason(
                    &mut self.events,
                    format!(
                        "Quick Mode for traffic other than L2TP (protocol {} port {})",
                        cr.protocol, cr.port
                    ),
                );
                return Err(IkeError::NoProposal);
            }
            client_port = ci.port;
        }
        // PFS: only with a KE payload of the proposed group.
        let (gqm, our_ke) = match (choice.pfs, find(PL_KE)) {
            (None, None) => (None, None),
            (Some(group), Some(ke)) => {
                let (y, public) = group.keypair(|b| host.random(b));
                let shared = group.shared(&y, ke).ok_or(IkeError::Malformed)?;
                (Some(shared), Some(public))
            }
            _ => return Err(IkeError::Malformed),
        };
        let spi_in = host.new_spi();
        let mut nr = vec![0u8; NONCE_LEN];
        host.random(&mut nr);
        let mut c = Chain::default();
        c.add(
            PL_SA,
            &message::sa_answer(
                choice.proposal,
                PROTO_ESP,
                &spi_in.to_be_bytes(),
                &choice.transform_raw,
            ),
        );
        c.add(PL_NONCE, &nr);
        if let Some(ke) = &our_ke {
            c.add(PL_KE, ke);
        }
        for id in &ids {
            c.add(PL_ID, id);
        }
        if let (Some(v), Encap::UdpTransport { .. }) = (self.natt, choice.encap) {
            let kind = natt::natoa_payload(v);
            if payloads.iter().any(|p| p.kind == kind) {
                // The addresses as this side sees them (RFC 3947 §5.2).
                for ip in [self.ends.remote.ip(), self.ends.local.ip()] {
                    let mut oa = vec![ID_IPV4_ADDR, 0, 0, 0];
                    oa.extend_from_slice(&ip.octets());
                    c.add(kind, &oa);
                }
            }
        }
        let hash2 = hash.prf(&up.keys.a, &[&mid.to_be_bytes(), ni, &c.bytes]);
        let c = c.prepend(PL_HASH, &hash2);
        let (qm2, qm2_last) = self.sealed(cipher, &up.keys.enc, &last, EXCH_QUICK, mid, &c);
        let t = choice.transform;
        let km = |spi| {
            keys::keymat(
                hash,
                &up.keys.d,
                gqm.as_deref().map(|v| v.as_slice()),
                PROTO_ESP,
                spi,
                ni,
                &nr,
                t.keymat_len(),
            )
        };
        let life = choice
            .lifetime
            .filter(|&s| s > 0)
            .map_or(self.cfg.max_phase2_life, Duration::from_secs)
            .min(self.cfg.max_phase2_life);
        let udp_encap = matches!(choice.encap, Encap::UdpTransport { .. });
        let child = ChildSa {
            message_id: mid,
            spi_in,
            spi_out: choice.spi_out,
            transform: t,
            keymat_in: km(spi_in),
            keymat_out: km(choice.spi_out),
            udp_encap,
            lifetime: life,
            client_port,
            template: ChildTemplate {
                transform: t,
                transform_raw: choice.transform_raw.clone(),
                pfs: choice.pfs,
                ids: (ids.len() == 2).then(|| (ids[0].to_vec(), ids[1].to_vec())),
                udp_encap,
                lifetime: life,
                client_port,
            },
        };
        self.quick.insert(
            mid,
            Quick {
                qm1: msg.to_vec(),
                qm2: qm2.clone(),
                iv: qm2_last,
                ni: ni.to_vec(),
                nr,
                spi_in,
                started: now,
            },
        );
        self.out.push_back(qm2);
        self.events.push_back(IkeEvent::Child(Box::new(child)));
        Ok(())
    }

    /// QM3: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
    fn quick_mode_done(&mut self, h: &Header, msg: &[u8]) -> Result<(), IkeError> {
        let mid = h.message_id;
        let (State::Up(up), Some(q)) = (&self.state, self.quick.get(&mid)) else {
            return Err(IkeError::Unexpected);
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let (plain, _) = open(cipher, &up.keys.enc, &q.iv, msg).ok_or(IkeError::Malformed)?;
        let (payloads, _) = split(h.next, &plain).map_err(|_| IkeError::Malformed)?;
        let Some(hash3) = payloads.first().filter(|p| p.kind == PL_HASH) else {
            return Err(IkeError::Malformed);
        };
        let want = hash.prf(&up.keys.a, &[&[0], &mid.to_be_bytes(), &q.ni, &q.nr]);
        if !bool::from(want.as_slice().ct_eq(hash3.body)) {
            return Err(IkeError::BadHash);
        }
        let spi_in = q.spi_in;
        self.quick.remove(&mid);
        self.done.push_back(mid);
        if self.done.len() > 16 {
            self.done.pop_front();
        }
        self.events.push_back(IkeEvent::ChildActive { spi_in });
        Ok(())
    }
}

/// A refused Quick Mode: the SA stays up, the host logs why.
fn log_reason(events: &mut std::collections::VecDeque<IkeEvent>, why: String) {
    events.push_back(IkeEvent::Refusal { reason: why });
}
