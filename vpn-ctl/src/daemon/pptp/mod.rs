//! The PPTP server (RFC 2637): TCP control connections, one raw GRE socket
//! for all calls, and a PPP call per PPTP call on the gateway's shared PPP
//! driver (`gateway::ppp`). Unencrypted calls are carried by the kernel.
mod carrier;
pub mod carry;
mod control;
mod gre;
mod timers;

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

pub use carrier::{Gre, GreWire, PptpCall};
pub use control::serve;
pub use gre::{open_socket, spawn_reader};
pub use timers::run as run_timers;

use crate::{
    daemon::gateway::{ppp::PppService, service::Service},
    dataplane::fastpath::SeqPage,
    report::SessionRow,
};

/// Counters for `status`.
#[derive(Default)]
pub struct PptpCounters {
    pub control_bad: AtomicU64,
    pub control_busy: AtomicU64,
    pub gre_unknown_call: AtomicU64,
    pub gre_malformed: AtomicU64,
    pub gre_wrong_peer: AtomicU64,
    pub calls_refused: AtomicU64,
}

pub struct Pptp {
    pub ppp: Arc<PppService>,
    pub max_half_open: usize,
    calls: RwLock<HashMap<u16, Arc<PptpCall>>>,
    pub gre: Arc<OwnedFd>,
    pub counters: PptpCounters,
    /// The GRE sequence space shared with the kernel (None: no fast path).
    pub seq: Option<Arc<SeqPage>>,
    /// A restart's rendezvous with the control connections.
    pub handoff: carry::Handoff,
}

impl Pptp {
    pub fn new(
        ppp: Arc<PppService>,
        max_half_open: usize,
        gre: OwnedFd,
        seq: Option<SeqPage>,
    ) -> Pptp {
        Pptp {
            ppp,
            max_half_open,
            calls: RwLock::default(),
            gre: Arc::new(gre),
            counters: PptpCounters::default(),
            seq: seq.map(Arc::new),
            handoff: carry::Handoff::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u16, Arc<PptpCall>>> {
        self.calls.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u16, Arc<PptpCall>>> {
        self.calls.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn by_id(&self, id: u16) -> Option<Arc<PptpCall>> {
        self.read().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<PptpCall>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by_key(|c| c.carrier.row_id);
        v
    }

    /// A random call ID no other call uses (clients behind one NAT share
    /// a peer address), or None after a bounded number of tries.
    pub(super) fn fresh_call_id(&self) -> Option<u16> {
        let calls = self.read();
        (0..64)
            .map(|_| rand::random::<u16>())
            .find(|id| *id != 0 && !calls.contains_key(id))
    }

    pub(super) fn insert(&self, call: Arc<PptpCall>) {
        self.write().insert(call.carrier.call_id, call);
    }

    /// Forgets a call: with the last reference go its address, route and
    /// fast-path entries.
    pub fn remove(&self, call_id: u16) -> Option<Arc<PptpCall>> {
        self.write().remove(&call_id)
    }
}

impl Service for Pptp {
    fn rows(&self, _ebpf: &Mutex<aya::Ebpf>) -> Vec<SessionRow> {
        self.all()
            .iter()
            .map(|c| c.row(c.carrier.control_peer.to_string()))
            .collect()
    }

    /// Ends a call (`vpn-ctl kill`): LCP terminate, then, once that is
    /// acknowledged (`LinkEvent::Finished`), its control connection clears
    /// it.
    fn end(&self, row_id: u64, why: &str) -> bool {
        let Some(call) = self.all().into_iter().find(|c| c.carrier.row_id == row_id) else {
            return false;
        };
        call.close(why);
        true
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("pptp_calls", self.read().len() as u64),
            (
                "pptp_dhcp_informs",
                self.ppp.counters.dhcp_informs.load(Ordering::Relaxed),
            ),
        ]
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let p = &self.ppp.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("pptp_control_bad", l(&c.control_bad)),
            ("pptp_control_busy", l(&c.control_busy)),
            ("pptp_gre_unknown_call", l(&c.gre_unknown_call)),
            ("pptp_gre_malformed", l(&c.gre_malformed)),
            ("pptp_gre_wrong_peer", l(&c.gre_wrong_peer)),
            ("pptp_calls_refused", l(&c.calls_refused)),
            ("pptp_ppp_dropped", l(&p.dropped)),
            ("pptp_ppp_flood", l(&p.flood)),
            ("pptp_ppp_send_failed", l(&p.send_failed)),
            ("pptp_login_failed", l(&p.login_failed)),
            ("pptp_login_throttled", l(&p.login_throttled)),
        ]
    }

    fn shutdown(&self) {}
}
