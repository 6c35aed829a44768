//! The PPTP server (RFC 2637) in its userspace form: TCP control
//! connections, one raw GRE socket for all calls, and a PPP link per call
//! (vpn-proto's engine). IP to and from a call goes through vpn0 like the
//! native protocol's; MPPE runs here.
mod control;
mod gre;
mod timers;

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use tokio::sync::Notify;
use vpn_proto::{
    ppp::link::{Link, LinkConfig},
    pptp::gre::GreHeader,
};

pub use control::serve;
pub use gre::{open_socket, packet_out, spawn_reader};
pub use timers::run as run_timers;

use vpn_common::maps::{SessionEntry, TunnelKey, PROTO_PPTP, SESSION_F_FAST_PATH};

use crate::{
    dataplane::fastpath::{self, SeqPage},
    report::SessionRow,
};

/// Per-call data state: the PPP link and GRE sequencing.
pub struct CallState {
    pub link: Link,
    /// Next sequence number we send.
    pub seq_out: u32,
    /// Highest sequence number received, and whether we owe an ack for it.
    pub seq_in: Option<u32>,
    pub ack_owed: bool,
    pub user: Option<String>,
    pub addr: Option<Ipv4Addr>,
    pub encryption: &'static str,
    /// The fast-path slot, while the kernel carries this call's IP packets.
    pub fast: Option<u32>,
    /// Fast path: the last `seq_in` we acknowledged on our own.
    pub fast_acked: Option<u32>,
    /// PPP control frames this call may still send (flood guard).
    pub control_budget: TokenBucket,
    /// The flood was logged once already.
    pub flood_logged: bool,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

pub struct Call {
    pub row_id: u64,
    /// Ours: the key of GRE packets the client sends us.
    pub call_id: u16,
    /// The client's: the key of GRE packets we send.
    pub peer_call_id: u16,
    pub peer: Ipv4Addr,
    /// Our address the client talks to (the outer source of our GRE).
    pub local: Ipv4Addr,
    /// The client's TCP control address, for `sessions`.
    pub control_peer: std::net::SocketAddr,
    pub started_at: u64,
    pub state: Mutex<CallState>,
    /// Wakes the call's control connection to clear dead calls (kill, link down).
    pub clear: Arc<Notify>,
}

#[derive(Default)]
struct Calls {
    by_id: HashMap<u16, Arc<Call>>,
    by_addr: HashMap<Ipv4Addr, Arc<Call>>,
}

/// PPP control frames per second a call may send (LCP echo, renegotiation
/// and CCP resets need a handful).
pub const CONTROL_RATE: u32 = 50;

/// A token bucket: `CONTROL_RATE` per second, bursts of twice that.
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(2 * CONTROL_RATE),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.last).as_secs_f64() * f64::from(CONTROL_RATE);
        self.tokens = (self.tokens + refill).min(f64::from(2 * CONTROL_RATE));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counters for `status`.
#[derive(Default)]
pub struct PptpCounters {
    pub control_bad: AtomicU64,
    pub control_busy: AtomicU64,
    pub gre_unknown_call: AtomicU64,
    pub gre_malformed: AtomicU64,
    pub gre_wrong_peer: AtomicU64,
    pub ppp_dropped: AtomicU64,
    pub ppp_flood: AtomicU64,
    pub login_failed: AtomicU64,
}

pub struct Pptp {
    pub enabled: bool,
    pub link: LinkConfig,
    pub dns: Vec<Ipv4Addr>,
    pub max_half_open: usize,
    calls: RwLock<Calls>,
    next_call_id: Mutex<u16>,
    pub gre: Option<OwnedFd>,
    pub counters: PptpCounters,
    /// The GRE sequence space shared with the kernel (None: no fast path).
    pub seq: Option<SeqPage>,
    /// Fast-path slots in use.
    slots: Mutex<Vec<bool>>,
}

impl Pptp {
    pub fn new(
        enabled: bool,
        link: LinkConfig,
        dns: Vec<Ipv4Addr>,
        max_half_open: usize,
        gre: Option<OwnedFd>,
        seq: Option<SeqPage>,
    ) -> Pptp {
        Pptp {
            seq,
            slots: Mutex::new(vec![false; vpn_common::maps::MAX_SESSIONS as usize]),
            enabled,
            link,
            dns,
            max_half_open,
            calls: RwLock::default(),
            next_call_id: Mutex::new(rand::random::<u16>().max(1)),
            gre,
            counters: PptpCounters::default(),
        }
    }

    fn alloc_slot(&self) -> Option<u32> {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let i = s.iter().position(|used| !used)?;
        s[i] = true;
        Some(i as u32)
    }

    fn free_slot(&self, i: u32) {
        if let Some(x) = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(i as usize)
        {
            *x = false;
        }
    }

    fn tunnel_key(call: &Call) -> TunnelKey {
        TunnelKey {
            peer_ip: fastpath::wire_ip(call.peer),
            local_id: u32::from(call.call_id),
            proto: PROTO_PPTP,
            _pad: [0; 3],
        }
    }

    /// Moves an unencrypted call's IP packets into the kernel (decisions #27).
    pub fn enable_fast_path(&self, ebpf: &Mutex<aya::Ebpf>, call: &Call, s: &mut CallState) {
        let (Some(seq), Some(addr)) = (&self.seq, s.addr) else {
            return;
        };
        let Some(idx) = self.alloc_slot() else {
            log::warn!(
                "pptp: no fast-path slot left; session {} stays in userspace",
                call.row_id
            );
            return;
        };
        seq.init(idx, s.seq_out, s.seq_in);
        let entry = SessionEntry {
            flags: SESSION_F_FAST_PATH,
            proto: PROTO_PPTP,
            peer_ip: fastpath::wire_ip(call.peer),
            local_ip: fastpath::wire_ip(call.local),
            local_id: u32::from(call.call_id),
            peer_id: u32::from(call.peer_call_id),
            assigned_ip: fastpath::wire_ip(addr),
            ..Default::default()
        };
        let mut e = ebpf.lock().unwrap_or_else(|e| e.into_inner());
        match fastpath::enable(&mut e, idx, Self::tunnel_key(call), entry) {
            Ok(()) => {
                s.fast = Some(idx);
                log::info!("pptp: session {} on the in-kernel fast path", call.row_id);
            }
            Err(err) => {
                self.free_slot(idx);
                log::warn!("pptp: session {} stays in userspace: {err:#}", call.row_id);
            }
        }
    }

    /// Takes a call off the fast path (before it is forgotten).
    pub fn disable_fast_path(&self, ebpf: &Mutex<aya::Ebpf>, call: &Call, s: &mut CallState) {
        let (Some(idx), Some(addr)) = (s.fast.take(), s.addr) else {
            return;
        };
        let mut e = ebpf.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) =
            fastpath::disable(&mut e, idx, Self::tunnel_key(call), fastpath::wire_ip(addr))
        {
            log::warn!(
                "pptp: session {}: removing it from the fast path: {err:#}",
                call.row_id
            );
        }
        self.free_slot(idx);
    }

    pub fn gre_fd(&self) -> Option<RawFd> {
        self.gre.as_ref().map(|f| f.as_raw_fd())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Calls> {
        self.calls.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Calls> {
        self.calls.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn by_id(&self, id: u16) -> Option<Arc<Call>> {
        self.read().by_id.get(&id).cloned()
    }

    pub fn by_addr(&self, ip: Ipv4Addr) -> Option<Arc<Call>> {
        self.read().by_addr.get(&ip).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Call>> {
        let mut v: Vec<_> = self.read().by_id.values().cloned().collect();
        v.sort_by_key(|c| c.row_id);
        v
    }

    /// A call ID no other call uses (clients behind one NAT share a peer address).
    pub(super) fn fresh_call_id(&self) -> u16 {
        let calls = self.read();
        let mut next = self.next_call_id.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let id = *next;
            *next = next.wrapping_add(1).max(1);
            if !calls.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    pub(super) fn insert(&self, call: Arc<Call>) {
        self.write().by_id.insert(call.call_id, call);
    }

    /// Makes the call reachable by its assigned address.
    pub fn bind_addr(&self, call: &Arc<Call>, ip: Ipv4Addr) {
        self.write().by_addr.insert(ip, call.clone());
    }

    /// Forgets a call; returns its address so the caller can release it.
    pub fn remove(&self, call_id: u16) -> Option<Arc<Call>> {
        let mut c = self.write();
        let call = c.by_id.remove(&call_id)?;
        c.by_addr.retain(|_, v| v.call_id != call_id);
        Some(call)
    }

    pub fn rows(&self, ebpf: &Mutex<aya::Ebpf>) -> Vec<SessionRow> {
        self.all()
            .iter()
            .map(|c| {
                let s = c.state.lock().unwrap_or_else(|e| e.into_inner());
                let fast = s
                    .fast
                    .and_then(|i| {
                        fastpath::stats(&ebpf.lock().unwrap_or_else(|e| e.into_inner()), i).ok()
                    })
                    .unwrap_or_default();
                SessionRow {
                    id: c.row_id,
                    protocol: "pptp".into(),
                    user: s.user.clone().unwrap_or_default(),
                    peer: c.control_peer.to_string(),
                    assigned_ip: s.addr.map(|a| a.to_string()).unwrap_or_default(),
                    state: if s.link.is_up() { "up" } else { "negotiating" }.into(),
                    started_at: c.started_at,
                    rx_bytes: s.rx_bytes + fast.rx_bytes,
                    rx_packets: s.rx_packets + fast.rx_packets,
                    tx_bytes: s.tx_bytes + fast.tx_bytes,
                    tx_packets: s.tx_packets + fast.tx_packets,
                    fast_path: s.fast.is_some(),
                    fast_path_rx_packets: fast.rx_packets,
                    fast_path_tx_packets: fast.tx_packets,
                    encryption: s.encryption.into(),
                    drops: s.drops,
                }
            })
            .collect()
    }

    /// Ends a call by row ID (`vpn-ctl kill`).
    pub fn kill(&self, row_id: u64) -> bool {
        let Some(call) = self.all().into_iter().find(|c| c.row_id == row_id) else {
            return false;
        };
        {
            let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
            s.link.close(Instant::now(), "ended by the administrator");
            self.flush_frames(&call, &mut s);
        }
        call.clear.notify_one();
        true
    }

    /// Sends every PPP frame the link queued, as GRE to the client.
    pub fn flush_frames(&self, call: &Call, s: &mut CallState) {
        let Some(fd) = self.gre_fd() else { return };
        let mut buf = Vec::with_capacity(1600);
        while let Some(f) = s.link.poll_frame() {
            gre_encap(call, s, self.seq.as_ref(), &f, &mut buf);
            let _ = gre::send(fd, &buf, call.peer);
        }
    }

    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let n = self.read().by_id.len() as u64;
        vec![("pptp_calls", n)]
    }

    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("pptp_control_bad", l(&c.control_bad)),
            ("pptp_control_busy", l(&c.control_busy)),
            ("pptp_gre_unknown_call", l(&c.gre_unknown_call)),
            ("pptp_gre_malformed", l(&c.gre_malformed)),
            ("pptp_gre_wrong_peer", l(&c.gre_wrong_peer)),
            ("pptp_ppp_dropped", l(&c.ppp_dropped)),
            ("pptp_ppp_flood", l(&c.ppp_flood)),
            ("pptp_login_failed", l(&c.login_failed)),
        ]
    }
}

/// The next sequence number and the ack to send: from the space shared with
/// the kernel while the call is on the fast path, else our own counters.
fn next_seq(s: &mut CallState, seq: Option<&SeqPage>) -> (u32, Option<u32>) {
    match (s.fast, seq) {
        (Some(i), Some(page)) => (page.next_seq(i), page.seq_in(i)),
        _ => {
            let n = s.seq_out;
            s.seq_out = n.wrapping_add(1);
            (n, s.seq_in)
        }
    }
}

/// GRE header + PPP frame for the client: the next sequence number, and
/// the acknowledgement of what we received (one sequence space per call).
pub fn gre_encap(
    call: &Call,
    s: &mut CallState,
    seq: Option<&SeqPage>,
    ppp: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    let (n, ack) = next_seq(s, seq);
    let h = GreHeader {
        call_id: call.peer_call_id,
        seq: Some(n),
        ack,
        payload_len: ppp.len() as u16,
    };
    s.ack_owed = false;
    h.encode(out);
    out.extend_from_slice(ppp);
}

/// An ack-only GRE packet (no payload, no sequence number).
pub fn gre_ack(call: &Call, s: &mut CallState, seq: Option<&SeqPage>, out: &mut Vec<u8>) {
    out.clear();
    let ack = match (s.fast, seq) {
        (Some(i), Some(page)) => page.seq_in(i),
        _ => s.seq_in,
    };
    let h = GreHeader {
        call_id: call.peer_call_id,
        seq: None,
        ack,
        payload_len: 0,
    };
    s.ack_owed = false;
    h.encode(out);
}
