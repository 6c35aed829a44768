//! The gateway side of the native protocol (docs/native-protocol.md): the
//! TCP handshake listener, the UDP/TUN data-path workers, and the timers
//! that run keepalive, expiry and rekey answers.
mod datapath;
mod listener;
pub mod registry;
mod timers;

use std::{
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use vpn_proto::native::{
    crypto::Cipher,
    messages::{Reason, Welcome},
    session::Params,
};

pub use datapath::Port;
pub use listener::serve as serve_handshakes;
pub use timers::run as run_timers;

use self::registry::Registry;
use crate::{daemon::gateway::service::Service, report::SessionRow};

/// Handshake outcomes, for `status`.
#[derive(Default)]
pub struct HandshakeCounters {
    pub ok: AtomicU64,
    pub bad_login: AtomicU64,
    /// Logins refused unchecked: too many failures from that address.
    pub throttled: AtomicU64,
    pub failed: AtomicU64,
    pub timeout: AtomicU64,
    pub busy: AtomicU64,
}

pub struct Native {
    pub registry: Registry,
    pub psk: zeroize::Zeroizing<[u8; 32]>,
    /// The gateway's static key (clients pin its public half), prepared
    /// once for every handshake.
    pub key: std::sync::Arc<vpn_proto::native::crypto::StaticKey>,
    pub ciphers: Vec<Cipher>,
    pub params: Params,
    pub max_half_open: usize,
    pub handshake_timeout: Duration,
    /// WELCOME without the per-session fields (ID, address).
    pub welcome: Welcome,
    /// One UDP socket per worker, all bound to `port` (SO_REUSEPORT).
    pub udp: Vec<OwnedFd>,
    pub handshakes: HandshakeCounters,
    /// Failed logins of every protocol (shared with PPTP and L2TP).
    pub logins: std::sync::Arc<crate::daemon::gateway::limits::LoginGuard>,
    /// Recent good logins, so reconnects skip argon2id.
    pub login_cache: crate::users::login_cache::LoginCache,
}

impl Native {
    /// A socket for one-off sends (timers, BYE).
    pub fn control_fd(&self) -> Option<RawFd> {
        self.udp.first().map(|f| f.as_raw_fd())
    }

    fn session_rows(&self) -> Vec<SessionRow> {
        self.registry.all().iter().map(|s| s.row()).collect()
    }

    /// Ends a session: BYE (reason and message) to the client, address freed.
    pub fn close(&self, row_id: u64, reason: Reason, msg: &str) -> bool {
        let Some(s) = self.registry.remove(row_id) else {
            return false;
        };
        let mut e = s.engine.lock().unwrap_or_else(|e| e.into_inner());
        let byes = e.close(Instant::now(), reason, msg);
        if let (Some(peer), Some(fd)) = (e.peer(), self.control_fd()) {
            for b in byes {
                let _ = crate::net::batch::send_to(fd, &b, peer);
            }
        }
        log::info!(
            "native: session {} ({}, {}) ended: {}{}; {}",
            s.row_id,
            s.user,
            s.addr,
            reason.describe(),
            if msg.is_empty() {
                String::new()
            } else {
                format!(" ({msg})")
            },
            crate::report::human::traffic(e.stats.rx_bytes, e.stats.tx_bytes)
        );
        true
    }
}

impl Service for Native {
    fn rows(&self, _ebpf: &std::sync::Mutex<aya::Ebpf>) -> Vec<SessionRow> {
        self.session_rows()
    }

    fn end(&self, row_id: u64, why: &str) -> bool {
        self.close(row_id, Reason::Killed, why)
    }

    /// Ends every session: clients reconnect once the gateway is back.
    fn shutdown(&self) {
        for s in self.registry.all() {
            self.close(s.row_id, Reason::Shutdown, "");
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let h = &self.handshakes;
        vec![
            ("native_sessions", self.registry.len() as u64),
            ("native_handshakes_ok", h.ok.load(Ordering::Relaxed)),
        ]
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        let h = &self.handshakes;
        let mut v = self.registry.drops();
        v.extend([
            ("native_login_failed", h.bad_login.load(Ordering::Relaxed)),
            (
                "native_login_throttled",
                h.throttled.load(Ordering::Relaxed),
            ),
            ("native_handshake_failed", h.failed.load(Ordering::Relaxed)),
            (
                "native_handshake_timeout",
                h.timeout.load(Ordering::Relaxed),
            ),
            ("native_handshake_busy", h.busy.load(Ordering::Relaxed)),
        ]);
        v
    }
}
