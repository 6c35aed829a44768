//! A gateway session's state as plain data, so a restarting daemon hands it
//! to its successor (docs/decisions.md #52): keys, counters, replay windows,
//! the client's endpoint and traffic totals. Times travel as ages.
use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize as _, Zeroizing};

use super::{
    crypto::{AeadKey, Cipher},
    session::{Params, RecvKey, Rekey, Role, SendKey, Session, Stats},
};
use crate::replay::ReplayWindow;

/// Send counters the successor skips: a packet the old process sealed
/// after its snapshot can never share a nonce with one the new one seals.
pub const SEND_COUNTER_MARGIN: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
pub struct SendCarry {
    pub id: u8,
    pub key: [u8; 32],
    pub counter: u64,
}

#[derive(Serialize, Deserialize)]
pub struct RecvCarry {
    pub id: u8,
    pub key: [u8; 32],
    pub next: u64,
    pub bits: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct SessionCarry {
    pub id: u32,
    pub cipher: u8,
    pub send: SendCarry,
    pub pending_send: Option<SendCarry>,
    pub recv: Vec<RecvCarry>,
    pub last_rekey_resp: Option<(u8, Vec<u8>, Vec<u8>)>,
    pub key_age_ms: u64,
    pub idle_ms: u64,
    pub inner_addr: Option<Ipv4Addr>,
    pub peer: Option<SocketAddr>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Drop for SendCarry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Drop for RecvCarry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

fn age(now: Instant, then: Instant) -> u64 {
    now.saturating_duration_since(then).as_millis() as u64
}

fn send_carry(k: &SendKey) -> SendCarry {
    SendCarry {
        id: k.id,
        key: *k.key.raw(),
        counter: k.counter,
    }
}

fn send_key(cipher: Cipher, c: &SendCarry) -> SendKey {
    SendKey {
        id: c.id,
        key: AeadKey::new(cipher, &c.key),
        counter: c.counter.saturating_add(SEND_COUNTER_MARGIN),
    }
}

/// Why a carried session could not be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CarryError {
    #[error("unknown cipher code {0}")]
    Cipher(u8),
    #[error("replay window of another size")]
    Window,
    #[error("no receive key")]
    NoKey,
}

impl Session {
    /// The gateway side's state, or None for a session that cannot be
    /// carried (a client's, or one already closed).
    pub fn carry(&self, now: Instant) -> Option<SessionCarry> {
        if self.role != Role::Server || self.closed {
            return None;
        }
        Some(SessionCarry {
            id: self.id,
            cipher: self.cipher as u8,
            send: send_carry(&self.send),
            pending_send: self.pending_send.as_ref().map(send_carry),
            recv: self
                .recv
                .iter()
                .map(|r| {
                    let (next, bits) = r.window.to_parts();
                    RecvCarry {
                        id: r.id,
                        key: *r.key.raw(),
                        next,
                        bits,
                    }
                })
                .collect(),
            last_rekey_resp: self.last_rekey_resp.clone(),
            key_age_ms: age(now, self.key_started),
            idle_ms: age(now, self.last_rx),
            inner_addr: self.inner_addr,
            peer: self.peer,
            rx_packets: self.stats.rx_packets,
            rx_bytes: self.stats.rx_bytes,
            tx_packets: self.stats.tx_packets,
            tx_bytes: self.stats.tx_bytes,
        })
    }

    /// The gateway session `carry` described, under the successor's PSK
    /// and policy. Send counters move on by [`SEND_COUNTER_MARGIN`].
    pub fn resume(
        c: &SessionCarry,
        psk: Zeroizing<[u8; 32]>,
        params: Params,
        now: Instant,
    ) -> Result<Session, CarryError> {
        let cipher = Cipher::from_code(c.cipher).ok_or(CarryError::Cipher(c.cipher))?;
        let recv = c
            .recv
            .iter()
            .map(|r| {
                Ok(RecvKey {
                    id: r.id,
                    key: AeadKey::new(cipher, &r.key),
                    window: ReplayWindow::from_parts(r.next, &r.bits).ok_or(CarryError::Window)?,
                })
            })
            .collect::<Result<Vec<_>, CarryError>>()?;
        if recv.is_empty() {
            return Err(CarryError::NoKey);
        }
        let back = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
        let last_rx = back(c.idle_ms);
        Ok(Session {
            role: Role::Server,
            id: c.id,
            cipher,
            psk,
            params,
            send: send_key(cipher, &c.send),
            pending_send: c.pending_send.as_ref().map(|p| send_key(cipher, p)),
            recv,
            rekey: Rekey::Idle,
            last_rekey_resp: c.last_rekey_resp.clone(),
            key_started: back(c.key_age_ms),
            rekey_due: now + params.rekey,
            inner_addr: c.inner_addr,
            peer: c.peer,
            last_rx,
            last_tx: now,
            last_probe: now,
            closed: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats {
                rx_packets: c.rx_packets,
                rx_bytes: c.rx_bytes,
                tx_packets: c.tx_packets,
                tx_bytes: c.tx_bytes,
                ..Stats::default()
            },
        })
    }
}
