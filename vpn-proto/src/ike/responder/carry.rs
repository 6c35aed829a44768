//! An established ISAKMP SA as plain data, so a restarting daemon hands it
//! to its successor (docs/decisions.md #52): cookies, endpoints, NAT-T
//! state, the Phase 1 algorithms and keys, and the IV later exchanges
//! derive theirs from. Quick Modes in flight are not carried (the SA is
//! then not carried either).
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Config, Endpoints, IkeSa, NatT, State, Up};
use crate::ike::{keys::Phase1Keys, proposal::Phase1Algs};

#[derive(Serialize, Deserialize)]
pub struct IkeCarry {
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    pub ends: Endpoints,
    pub natt: Option<NatT>,
    pub peer_behind_nat: bool,
    pub we_behind_nat: bool,
    pub dpd: bool,
    pub initial_contact: bool,
    pub age_ms: u64,
    pub expires_in_ms: Option<u64>,
    pub algs: Phase1Algs,
    pub skeyid: Vec<u8>,
    pub d: Vec<u8>,
    pub a: Vec<u8>,
    pub enc: Vec<u8>,
    pub iv: Vec<u8>,
    pub phase1_iv: Vec<u8>,
    pub done: Vec<u32>,
}

impl Drop for IkeCarry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for k in [&mut self.skeyid, &mut self.d, &mut self.a, &mut self.enc] {
            k.zeroize();
        }
    }
}

impl IkeSa {
    /// The SA's state if it is up with no exchange in flight, else None.
    /// A Quick Mode the gateway started and finished is not carried (only
    /// a repeat of its QM3 and its ChildActive fallback are lost; the host
    /// carries the waiting outbound SA, and the client's first packet on
    /// the new pair still moves the gateway to it).
    pub fn carry(&self, now: Instant) -> Option<IkeCarry> {
        let State::Up(up) = &self.state else {
            return None;
        };
        if !self.quick.is_empty() || self.initiated.values().any(|i| i.in_flight()) {
            return None;
        }
        let k = &up.keys;
        Some(IkeCarry {
            icookie: self.icookie,
            rcookie: self.rcookie,
            ends: self.ends,
            natt: self.natt,
            peer_behind_nat: self.peer_behind_nat,
            we_behind_nat: self.we_behind_nat,
            dpd: self.dpd,
            initial_contact: self.initial_contact,
            age_ms: now.saturating_duration_since(self.created).as_millis() as u64,
            expires_in_ms: self
                .expires
                .map(|e| e.saturating_duration_since(now).as_millis() as u64),
            algs: up.algs,
            skeyid: k.skeyid.to_vec(),
            d: k.d.to_vec(),
            a: k.a.to_vec(),
            enc: k.enc.to_vec(),
            iv: k.iv.clone(),
            phase1_iv: up.phase1_iv.clone(),
            done: self.done.iter().copied().collect(),
        })
    }

    /// The SA `carry` described, under the successor's configuration.
    pub fn resume(cfg: Arc<Config>, c: &IkeCarry, now: Instant) -> IkeSa {
        let secret = |v: &Vec<u8>| Zeroizing::new(v.clone());
        IkeSa {
            cfg,
            icookie: c.icookie,
            rcookie: c.rcookie,
            ends: c.ends,
            state: State::Up(Box::new(Up {
                algs: c.algs,
                keys: Phase1Keys {
                    skeyid: secret(&c.skeyid),
                    d: secret(&c.d),
                    a: secret(&c.a),
                    enc: secret(&c.enc),
                    iv: c.iv.clone(),
                },
                phase1_iv: c.phase1_iv.clone(),
            })),
            natt: c.natt,
            peer_behind_nat: c.peer_behind_nat,
            we_behind_nat: c.we_behind_nat,
            dpd: c.dpd,
            initial_contact: c.initial_contact,
            created: now
                .checked_sub(Duration::from_millis(c.age_ms))
                .unwrap_or(now),
            expires: c.expires_in_ms.map(|ms| now + Duration::from_millis(ms)),
            last_in: Vec::new(),
            last_out: None,
            quick: HashMap::new(),
            initiated: HashMap::new(),
            done: c.done.iter().copied().collect::<VecDeque<_>>(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}
