//! L2TP/IPsec: the IKEv1 responder (vpn-proto's engine) on UDP 500/4500
//! and ESP in userspace (UDP-encapsulated or raw protocol 50). Decrypted
//! L2TP goes to the L2TP service bound to the SA's client (the link), so
//! several clients behind one NAT work. docs/decisions.md #40.
pub mod carry;
mod ike;
mod peer;
pub mod sockets;
mod worker;

use std::{
    collections::HashMap,
    net::SocketAddrV4,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use vpn_proto::{
    esp,
    ike::responder::{Config as IkeConfig, IkeSa},
};

pub use peer::Peer;
pub use worker::spawn as spawn_worker;

use crate::{
    daemon::gateway::limits::{HalfOpen, HalfOpenPermit},
    report::SessionRow,
};
use sockets::Sockets;

#[derive(Default)]
pub struct IpsecCounters {
    pub ike_malformed: AtomicU64,
    pub ike_unexpected: AtomicU64,
    pub ike_no_proposal: AtomicU64,
    pub ike_auth_failed: AtomicU64,
    pub ike_bad_hash: AtomicU64,
    pub ike_busy: AtomicU64,
    pub ike_half_open_limit: AtomicU64,
    pub ike_established: AtomicU64,
    pub esp_unknown_spi: AtomicU64,
    pub esp_integrity: AtomicU64,
    pub esp_replay: AtomicU64,
    pub esp_malformed: AtomicU64,
    pub esp_not_l2tp: AtomicU64,
    pub no_outbound_sa: AtomicU64,
    pub natt_keepalives: AtomicU64,
}

/// An inbound ESP SA: its keys and replay window, and its client.
pub struct InboundSa {
    pub peer: Arc<Peer>,
    pub esp: Mutex<esp::Inbound>,
    pub udp: bool,
    pub spi_out: u32,
    /// The ISAKMP SA that made it (to send its Delete through).
    pub ike: ([u8; 8], [u8; 8]),
    pub expires: Instant,
    pub rx_packets: AtomicU64,
    /// What a gateway-started Quick Mode proposes to replace this pair,
    /// and when (the client had not rekeyed by then).
    pub template: vpn_proto::ike::responder::ChildTemplate,
    pub rekey_at: Instant,
    /// A newer pair exists for its client (or one is being negotiated).
    pub superseded: std::sync::atomic::AtomicBool,
}

/// How long before an ESP SA expires the gateway starts its own Quick
/// Mode, unless the client rekeyed: a tenth of the lifetime, at least
/// enough for QM1's retransmissions (15 s), at most strongSwan's default
/// margin (9 min).
pub fn rekey_margin(lifetime: std::time::Duration) -> std::time::Duration {
    use std::time::Duration;
    (lifetime / 10).clamp(Duration::from_secs(15), Duration::from_secs(540))
}

pub struct IkeEntry {
    pub sa: IkeSa,
    /// The client moved to UDP 4500 (answer there, with the marker).
    pub natt_port: bool,
    /// Held until Main Mode completes.
    pub half_open: Option<HalfOpenPermit>,
}

#[derive(Default)]
pub struct Tables {
    pub ike: HashMap<([u8; 8], [u8; 8]), IkeEntry>,
    /// First messages by (client, its cookie): retransmissions find their SA.
    pub first: HashMap<(SocketAddrV4, [u8; 8]), [u8; 8]>,
    pub peers: HashMap<SocketAddrV4, Arc<Peer>>,
    /// Outbound SAs waiting for their Quick Mode's third message, by inbound SPI.
    pub pending_out: HashMap<u32, peer::OutboundSa>,
    pub next_peer_id: u64,
}

pub struct Ipsec {
    pub cfg: Arc<IkeConfig>,
    pub sockets: Arc<Sockets>,
    pub tables: Mutex<Tables>,
    /// The data path's view: SPI → SA (read per packet).
    pub inbound: RwLock<HashMap<u32, Arc<InboundSa>>>,
    pub half_open: Arc<HalfOpen>,
    pub max_ike_sas: usize,
    pub counters: Arc<IpsecCounters>,
    /// The SPIs the WAN's XDP program lets through.
    pub spis: crate::dataplane::esp_spis::EspSpis,
}

impl Ipsec {
    pub fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn inbound_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, Arc<InboundSa>>> {
        self.inbound.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn inbound_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, Arc<InboundSa>>> {
        self.inbound.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl crate::daemon::gateway::service::Service for Ipsec {
    /// Sessions are L2TP's (shown as `l2tp-ipsec`).
    fn rows(&self, _ebpf: &Mutex<aya::Ebpf>) -> Vec<SessionRow> {
        Vec::new()
    }

    fn end(&self, _row_id: u64, _why: &str) -> bool {
        false
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let t = self.tables();
        let up = t.ike.values().filter(|e| e.sa.is_up()).count();
        vec![
            ("ike_sas", up as u64),
            ("ike_half_open", (t.ike.len() - up) as u64),
            ("esp_sas", self.inbound_read().len() as u64),
            ("ipsec_clients", t.peers.len() as u64),
            (
                "ike_established",
                self.counters.ike_established.load(Ordering::Relaxed),
            ),
            (
                "natt_keepalives",
                self.counters.natt_keepalives.load(Ordering::Relaxed),
            ),
        ]
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("ike_malformed", l(&c.ike_malformed)),
            ("ike_unexpected", l(&c.ike_unexpected)),
            ("ike_no_proposal", l(&c.ike_no_proposal)),
            ("ike_auth_failed", l(&c.ike_auth_failed)),
            ("ike_bad_hash", l(&c.ike_bad_hash)),
            ("ike_busy", l(&c.ike_busy)),
            ("ike_half_open_limit", l(&c.ike_half_open_limit)),
            ("esp_unknown_spi", l(&c.esp_unknown_spi)),
            ("esp_integrity", l(&c.esp_integrity)),
            ("esp_replay", l(&c.esp_replay)),
            ("esp_malformed", l(&c.esp_malformed)),
            ("esp_not_l2tp", l(&c.esp_not_l2tp)),
            ("esp_no_outbound_sa", l(&c.no_outbound_sa)),
        ]
    }

    /// Deletes every ISAKMP SA (clients learn the gateway went away).
    fn shutdown(&self) {
        let mut t = self.tables();
        let keys: Vec<_> = t.ike.keys().copied().collect();
        for k in keys {
            ike::close(self, &mut t, k, "the gateway is stopping");
        }
    }
}
