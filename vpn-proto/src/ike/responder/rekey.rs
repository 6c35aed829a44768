//! Quick Mode started by the gateway (RFC 2409 §5.5, initiator side): a new
//! ESP SA pair to replace one the client lets expire without rekeying.
//! The proposal is the transform the client chose last time (with its PFS
//! group) and the traffic selectors it used, swapped to our side, so the
//! client's policy matches them. QM1 → QM2 → QM3; the new inbound SA is
//! usable once QM3 is sent, the new outbound one only once the client has
//! installed the pair, which it does on receiving QM3: sending on it at
//! once loses the packets that overtake QM3's processing (seen with
//! strongSwan, 0.25 ms after QM3). [`IkeEvent::ChildActive`] follows
//! [`ACTIVATE_AFTER`] later; the host switches sooner when the client's
//! first packet arrives on the new inbound SA, which proves the same.
//! Make-before-break: the old pair stays until it expires.
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{seal::open_hashed, ChildSa, ChildTemplate, Host, IkeError, IkeEvent, IkeSa, State};
use crate::ike::{
    consts::*,
    keys,
    message::{self, split, Chain, Header, SaPayload},
    natt,
};

const NONCE_LEN: usize = 32;
/// QM1 again after this long without an answer.
const RETRANSMIT: Duration = Duration::from_secs(3);
/// Transmissions of QM1 before the attempt is given up.
const TRIES: u32 = 5;
/// After QM3, when the client is taken to have installed the new pair
/// even if it sent nothing on it. A repeated QM2 (QM3 was lost) restarts it.
pub const ACTIVATE_AFTER: Duration = Duration::from_secs(2);
/// How long a finished exchange keeps its QM3 for a repeated QM2.
const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// A Quick Mode we started, waiting for QM2 (or answered, keeping QM3 for
/// a repeated QM2).
pub(super) struct Initiated {
    template: ChildTemplate,
    qm1: Vec<u8>,
    iv: Vec<u8>,
    ni: Vec<u8>,
    ke: Option<(Zeroizing<Vec<u8>>, Vec<u8>)>,
    spi_in: u32,
    sent: u32,
    next: Instant,
    /// After QM2: (QM2, QM3) to answer a repeat of QM2.
    finished: Option<(Vec<u8>, Vec<u8>)>,
    finished_at: Option<Instant>,
    /// ChildActive was said.
    active: bool,
}

impl Initiated {
    /// Waiting for QM2 (after it, only a repeat of QM3 and the fallback
    /// ChildActive are left).
    pub(super) fn in_flight(&self) -> bool {
        self.finished.is_none()
    }

    pub(super) fn deadline(&self) -> Instant {
        match self.finished_at {
            Some(t) if !self.active => t + ACTIVATE_AFTER,
            Some(t) => t + REPEAT_WINDOW,
            None => self.next,
        }
    }
}

impl IkeSa {
    /// Starts a Quick Mode for a new SA pair like `template`'s. False when
    /// the ISAKMP SA is not up.
    pub fn rekey_child(
        &mut self,
        now: Instant,
        template: &ChildTemplate,
        host: &mut dyn Host,
    ) -> bool {
        let State::Up(up) = &self.state else {
            return false;
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let mut mid = 0u32;
        while mid == 0 || self.quick.contains_key(&mid) || self.initiated.contains_key(&mid) {
            let mut b = [0u8; 4];
            host.random(&mut b);
            mid = u32::from_be_bytes(b);
        }
        let spi_in = host.new_spi();
        let mut ni = vec![0u8; NONCE_LEN];
        host.random(&mut ni);
        let ke = template.pfs.map(|g| g.keypair(|b| host.random(b)));
        let mut c = Chain::default();
        c.add(
            PL_SA,
            &message::sa_answer(1, PROTO_ESP, &spi_in.to_be_bytes(), &template.transform_raw),
        );
        c.add(PL_NONCE, &ni);
        if let Some((_, public)) = &ke {
            c.add(PL_KE, public);
        }
        // Ours first now: the client's selectors, swapped.
        if let Some((ci, cr)) = &template.ids {
            c.add(PL_ID, cr);
            c.add(PL_ID, ci);
        }
        if let (Some(v), true) = (self.natt, template.udp_encap) {
            let kind = natt::natoa_payload(v);
            for ip in [self.ends.local.ip(), self.ends.remote.ip()] {
                let mut oa = vec![ID_IPV4_ADDR, 0, 0, 0];
                oa.extend_from_slice(&ip.octets());
                c.add(kind, &oa);
            }
        }
        let hash1 = hash.prf(&up.keys.a, &[&mid.to_be_bytes(), &c.bytes]);
        let c = c.prepend(PL_HASH, &hash1);
        let iv = keys::exchange_iv(hash, cipher.block(), &up.phase1_iv, mid);
        let (qm1, last) = self.sealed(cipher, &up.keys.enc, &iv, EXCH_QUICK, mid, &c);
        self.out.push_back(qm1.clone());
        self.initiated.insert(
            mid,
            Initiated {
                template: template.clone(),
                qm1,
                iv: last,
                ni,
                ke,
                spi_in,
                sent: 1,
                next: now + RETRANSMIT,
                finished: None,
                finished_at: None,
                active: false,
            },
        );
        true
    }

    /// QM2 of a Quick Mode we started: check HASH(2) and the answer, send
    /// QM3, hand out the new SA pair.
    pub(super) fn quick_mode_answer(
        &mut self,
        now: Instant,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), IkeError> {
        let mid = h.message_id;
        if let Some(i) = self.initiated.get_mut(&mid) {
            if let Some((qm2, qm3)) = &i.finished {
                if msg != qm2.as_slice() {
                    return Err(IkeError::Unexpected);
                }
                let again = qm3.clone();
                if !i.active {
                    // The client has not got QM3, so not the new pair either.
                    i.finished_at = Some(now);
                }
                self.out.push_back(again);
                return Ok(());
            }
        }
        let (State::Up(up), Some(i)) = (&self.state, self.initiated.get(&mid)) else {
            return Err(IkeError::Unexpected);
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let (plain, last) = open_hashed(up, &i.iv, h, msg, &i.ni)?;
        let (payloads, _) = split(h.next, &plain).map_err(|_| IkeError::Malformed)?;
        let find = |k| payloads.iter().find(|p| p.kind == k).map(|p| p.body);
        let (Some(sa), Some(nr)) = (find(PL_SA), find(PL_NONCE)) else {
            return Err(IkeError::Malformed);
        };
        let answer = SaPayload::decode(sa).map_err(|_| IkeError::Malformed)?;
        // One proposal, one transform: ours, with the client's SPI.
        let Some(p) = answer
            .proposals
            .first()
            .filter(|p| p.protocol == PROTO_ESP && p.spi.len() == 4 && p.transforms.len() == 1)
        else {
            return Err(IkeError::NoProposal);
        };
        // The transform payload's body: number, transform ID, attributes.
        if i.template.transform_raw.get(1) != Some(&p.transforms[0].id) {
            return Err(IkeError::NoProposal);
        }
        let spi_out = u32::from_be_bytes(p.spi.try_into().expect("4 bytes"));
        let gqm = match (&i.ke, find(PL_KE)) {
            (None, _) => None,
            (Some((x, _)), Some(theirs)) => {
                let group = i.template.pfs.expect("a KE only with PFS");
                Some(group.shared(x, theirs).ok_or(IkeError::Malformed)?)
            }
            (Some(_), None) => return Err(IkeError::Malformed),
        };
        let hash3 = hash.prf(&up.keys.a, &[&[0], &mid.to_be_bytes(), &i.ni, nr]);
        let mut c = Chain::default();
        c.add(PL_HASH, &hash3);
        let (qm3, _) = self.sealed(cipher, &up.keys.enc, &last, EXCH_QUICK, mid, &c);
        let t = i.template.transform;
        let km = |spi| {
            keys::keymat(
                hash,
                &up.keys.d,
                gqm.as_deref().map(|v| v.as_slice()),
                PROTO_ESP,
                spi,
                &i.ni,
                nr,
                t.keymat_len(),
            )
        };
        let child = ChildSa {
            message_id: mid,
            spi_in: i.spi_in,
            spi_out,
            transform: t,
            keymat_in: km(i.spi_in),
            keymat_out: km(spi_out),
            udp_encap: i.template.udp_encap,
            lifetime: i.template.lifetime,
            client_port: i.template.client_port,
            template: i.template.clone(),
        };
        self.out.push_back(qm3.clone());
        if let Some(i) = self.initiated.get_mut(&mid) {
            i.finished = Some((msg.to_vec(), qm3));
            i.finished_at = Some(now);
            i.ke = None;
        }
        self.events.push_back(IkeEvent::Child(Box::new(child)));
        Ok(())
    }

    /// Retransmits unanswered QM1s; drops attempts that got no answer and
    /// finished ones past their repeat window.
    pub(super) fn initiated_timeouts(&mut self, now: Instant) {
        let mut resend = Vec::new();
        let mut gave_up = 0;
        let mut active = Vec::new();
        self.initiated.retain(|_, i| {
            if let Some(t) = i.finished_at {
                if !i.active && now >= t + ACTIVATE_AFTER {
                    i.active = true;
                    active.push(IkeEvent::ChildActive { spi_in: i.spi_in });
                }
                return now < t + REPEAT_WINDOW;
            }
            if now < i.next {
                return true;
            }
            if i.sent >= TRIES {
                gave_up += 1;
                return false;
            }
            i.sent += 1;
            i.next = now + RETRANSMIT;
            resend.push(i.qm1.clone());
            true
        });
        self.out.extend(resend);
        self.events.extend(active);
        for _ in 0..gave_up {
            self.events.push_back(IkeEvent::Refusal {
                reason: "the client did not answer the gateway's Quick Mode (rekey)".into(),
            });
        }
    }
}
