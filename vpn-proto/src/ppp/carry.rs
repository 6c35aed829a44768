//! A gateway link that is up, as plain data, so a restarting daemon hands
//! it to its successor (docs/decisions.md #52): what LCP, IPCP and CCP
//! agreed, each automaton's next identifier, the MPPE keys and both
//! directions' RC4 state and coherency counts. Links still negotiating are
//! not carried (their calls end and the clients redial).
use std::{collections::VecDeque, net::Ipv4Addr, time::Instant};

use serde::{Deserialize, Serialize};

use super::{
    fsm::Fsm,
    ipcp::Ipcp,
    lcp::{Lcp, LcpAgreed},
    link::{Link, LinkConfig, Phase},
    mppe::{Ccp, Mppe, MppeCarry},
    mschap::StartKeys,
};

#[derive(Serialize, Deserialize)]
pub struct LinkCarry {
    pub lcp_agreed: LcpAgreed,
    pub lcp_mru: u16,
    pub lcp_magic: u32,
    pub lcp_rng: u32,
    pub lcp_next_id: u8,
    pub ipcp_local: Ipv4Addr,
    pub ipcp_peer: Ipv4Addr,
    pub ipcp_dns: Vec<Ipv4Addr>,
    pub ipcp_next_id: u8,
    /// The agreed MPPE option bits and CCP's next identifier.
    pub ccp: Option<(u32, u8)>,
    pub start_keys: Option<([u8; 16], [u8; 16])>,
    pub tx: Option<MppeCarry>,
    pub rx: Option<MppeCarry>,
    pub random: [u8; 16],
    pub echoes_unanswered: u32,
}

impl Drop for LinkCarry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        if let Some((s, r)) = &mut self.start_keys {
            s.zeroize();
            r.zeroize();
        }
        self.random.zeroize();
    }
}

/// Why a carried link could not be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("inconsistent MPPE state")]
pub struct BadCarry;

impl Link {
    /// The link's state if it is up and idle (nothing queued), else None.
    pub fn carry(&self) -> Option<LinkCarry> {
        let ipcp = self.ipcp.as_ref()?;
        if !self.up || self.phase != Phase::Network || !self.lcp.is_open() || !ipcp.is_open() {
            return None;
        }
        let ccp = match &self.ccp {
            Some(c) if c.is_open() => Some((c.opts.agreed?, c.next_id())),
            Some(_) => return None,
            None => None,
        };
        Some(LinkCarry {
            lcp_agreed: self.lcp.opts.agreed.clone(),
            lcp_mru: self.lcp.opts.mru,
            lcp_magic: self.lcp.opts.magic(),
            lcp_rng: self.lcp.opts.rng_state(),
            lcp_next_id: self.lcp.next_id(),
            ipcp_local: ipcp.opts.local,
            ipcp_peer: ipcp.opts.peer,
            ipcp_dns: ipcp.opts.dns.clone(),
            ipcp_next_id: ipcp.next_id(),
            ccp,
            start_keys: self.mppe_keys.as_ref().map(|k| (k.send, k.recv)),
            tx: self.tx.as_ref().map(Mppe::carry),
            rx: self.rx.as_ref().map(Mppe::carry),
            random: self.random,
            echoes_unanswered: self.echoes_unanswered,
        })
    }

    /// The link `carry` described, under the successor's policy; it is up
    /// at once (no events), and its echo timer starts now.
    pub fn resume(cfg: LinkConfig, c: &LinkCarry, now: Instant) -> Result<Link, BadCarry> {
        let lcp = Lcp::resumed(
            cfg.auth.clone(),
            c.lcp_mru,
            c.lcp_magic,
            c.lcp_rng,
            c.lcp_agreed.clone(),
        );
        let ccp = c.ccp.map(|(agreed, next_id)| {
            let mut opts = Ccp::new(cfg.allow_mppe_128, cfg.allow_mppe_40, false);
            opts.agreed = Some(agreed);
            Fsm::opened(opts, next_id)
        });
        let resume = |m: &Option<MppeCarry>| m.as_ref().map(|m| Mppe::resume(m).ok_or(BadCarry));
        let tx = resume(&c.tx).transpose()?;
        let rx = resume(&c.rx).transpose()?;
        if tx.is_some() != rx.is_some() {
            return Err(BadCarry);
        }
        Ok(Link {
            phase: Phase::Network,
            lcp: Fsm::opened(lcp, c.lcp_next_id),
            auth: None,
            ipcp: Some(Fsm::opened(
                Ipcp::server(c.ipcp_local, c.ipcp_peer, c.ipcp_dns.clone()),
                c.ipcp_next_id,
            )),
            ccp,
            mppe_keys: c.start_keys.map(|(send, recv)| StartKeys { send, recv }),
            tx,
            rx,
            random: c.random,
            up: true,
            next_echo: Some(now + cfg.echo_interval),
            echoes_unanswered: c.echoes_unanswered,
            finished: false,
            frames: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        })
    }
}
