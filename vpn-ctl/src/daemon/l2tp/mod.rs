//! The L2TPv2 LNS (RFC 2661): one UDP socket (1701) for every tunnel, a
//! tunnel engine per client (vpn-proto's), and a PPP call per L2TP session
//! on the gateway's shared PPP driver. Tunnels are keyed by our tunnel ID
//! once set up, and by (client address and port, its tunnel ID) before, so
//! several clients behind one NAT each get their own.
mod carrier;
pub mod carry;
pub mod link;
mod socket;

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

pub use carrier::{DataSeq, L2tpCall, Udp};
use link::{Link, LinkId};
pub use socket::{deliver, forget_link, spawn as spawn_worker};
use vpn_proto::l2tp::tunnel::{Tunnel, TunnelConfig};

use crate::{
    daemon::gateway::{ppp::PppService, service::Service},
    report::SessionRow,
};

/// Counters for `status` (drops by reason).
#[derive(Default)]
pub struct L2tpCounters {
    pub malformed: AtomicU64,
    pub unknown_tunnel: AtomicU64,
    pub unknown_session: AtomicU64,
    pub wrong_peer: AtomicU64,
    pub out_of_window: AtomicU64,
    pub duplicate: AtomicU64,
    pub hidden_unreadable: AtomicU64,
    pub plain_refused: AtomicU64,
    pub busy: AtomicU64,
    pub per_address_limit: AtomicU64,
    pub tunnels_opened: AtomicU64,
}

pub struct TunnelEntry {
    pub local_id: u16,
    pub peer_id: u16,
    pub link: Link,
    pub engine: Mutex<Tunnel>,
}

#[derive(Default)]
pub struct Tables {
    pub tunnels: HashMap<u16, Arc<TunnelEntry>>,
    pub by_peer: HashMap<(LinkId, u16), u16>,
    pub calls: HashMap<(u16, u16), Arc<L2tpCall>>,
}

pub struct Policy {
    pub tunnel: TunnelConfig,
    pub allow_plain: bool,
    pub max_per_address: usize,
    pub max_half_open: usize,
}

pub struct L2tp {
    pub ppp: Arc<PppService>,
    /// Calls inside IPsec (`l2tp-ipsec` in `sessions`), when IPsec is on.
    pub ppp_ipsec: Option<Arc<PppService>>,
    pub policy: Policy,
    /// Our UDP port (the source of everything we send).
    pub port: u16,
    pub socket: Arc<OwnedFd>,
    pub tables: RwLock<Tables>,
    /// Calls whose PPP link ended; the worker sends their CDN.
    pub ended: Arc<Mutex<Vec<(u16, u16)>>>,
    pub counters: L2tpCounters,
}

impl L2tp {
    pub fn new(
        ppp: Arc<PppService>,
        ppp_ipsec: Option<Arc<PppService>>,
        policy: Policy,
        port: u16,
        socket: OwnedFd,
    ) -> L2tp {
        L2tp {
            ppp,
            ppp_ipsec,
            policy,
            port,
            socket: Arc::new(socket),
            tables: RwLock::default(),
            ended: Arc::default(),
            counters: L2tpCounters::default(),
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    fn calls(&self) -> Vec<Arc<L2tpCall>> {
        let mut v: Vec<_> = self.read().calls.values().cloned().collect();
        v.sort_by_key(|c| c.carrier.row_id);
        v
    }
}

impl Service for L2tp {
    fn rows(&self, _ebpf: &Mutex<aya::Ebpf>) -> Vec<SessionRow> {
        self.calls()
            .iter()
            .map(|c| {
                let mut row = c.row(c.carrier.peer.to_string());
                if let Link::Secure { sa, .. } = &c.carrier.link {
                    row.peer = sa.endpoint().to_string();
                    row.encryption = sa.describe();
                }
                row
            })
            .collect()
    }

    /// Ends a call (`vpn-ctl kill`): LCP terminate, then, once that is
    /// acknowledged (`LinkEvent::Finished`), CDN.
    fn end(&self, row_id: u64, why: &str) -> bool {
        let Some(call) = self
            .calls()
            .into_iter()
            .find(|c| c.carrier.row_id == row_id)
        else {
            return false;
        };
        call.close(why);
        true
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let t = self.read();
        let up = t
            .tunnels
            .values()
            .filter(|e| e.engine.lock().unwrap_or_else(|e| e.into_inner()).is_up())
            .count();
        vec![
            ("l2tp_tunnels", up as u64),
            ("l2tp_sessions", t.calls.len() as u64),
            (
                "l2tp_tunnels_opened",
                self.counters.tunnels_opened.load(Ordering::Relaxed),
            ),
            (
                "l2tp_dhcp_informs",
                [Some(&self.ppp), self.ppp_ipsec.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|p| p.counters.dhcp_informs.load(Ordering::Relaxed))
                    .sum(),
            ),
        ]
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let p = &self.ppp.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v = vec![
            ("l2tp_malformed", l(&c.malformed)),
            ("l2tp_unknown_tunnel", l(&c.unknown_tunnel)),
            ("l2tp_unknown_session", l(&c.unknown_session)),
            ("l2tp_wrong_peer", l(&c.wrong_peer)),
            ("l2tp_out_of_window", l(&c.out_of_window)),
            ("l2tp_duplicate", l(&c.duplicate)),
            ("l2tp_hidden_unreadable", l(&c.hidden_unreadable)),
            ("l2tp_plain_refused", l(&c.plain_refused)),
            ("l2tp_busy", l(&c.busy)),
            ("l2tp_per_address_limit", l(&c.per_address_limit)),
            ("l2tp_ppp_dropped", l(&p.dropped)),
            ("l2tp_ppp_flood", l(&p.flood)),
            ("l2tp_ppp_send_failed", l(&p.send_failed)),
            ("l2tp_login_failed", l(&p.login_failed)),
            ("l2tp_login_throttled", l(&p.login_throttled)),
        ];
        if let Some(p) = &self.ppp_ipsec {
            let p = &p.counters;
            v.extend([
                ("l2tp_ipsec_ppp_dropped", l(&p.dropped)),
                ("l2tp_ipsec_ppp_flood", l(&p.flood)),
                ("l2tp_ipsec_ppp_send_failed", l(&p.send_failed)),
                ("l2tp_ipsec_login_failed", l(&p.login_failed)),
                ("l2tp_ipsec_login_throttled", l(&p.login_throttled)),
            ]);
        }
        v
    }

    /// StopCCN to every client.
    fn shutdown(&self) {
        let now = Instant::now();
        let tunnels: Vec<_> = self.read().tunnels.values().cloned().collect();
        for t in tunnels {
            let mut e = t.engine.lock().unwrap_or_else(|e| e.into_inner());
            e.shut_down(now);
            while let Some(d) = e.poll_transmit() {
                t.link.send(&d);
            }
        }
    }
}
