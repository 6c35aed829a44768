//! One PPP call driver for every PPP carrier (PPTP, L2TP): the link
//! (vpn-proto's engine), the user and the address lease after login, the
//! encryption it agreed, the control-frame flood guard, the in-kernel fast
//! path for unencrypted calls, and the call's counters. A carrier only
//! moves PPP frames: it implements [`Carrier`] (encapsulate and send, say
//! what the kernel needs to carry the call, wake its control connection).
mod carry;

use std::{
    net::Ipv4Addr,
    os::fd::RawFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::Instant,
};

use vpn_common::maps::{SessionEntry, TunnelKey};
use vpn_proto::{
    dhcp::{self, InformAnswer},
    ppp::{
        auth::{Credentials, Verdict},
        link::{parse_frame, Link, LinkConfig, LinkEvent},
    },
};

pub use carry::CallCarry;

use super::{
    limits::{warn_unauthenticated, LoginGuard, TokenBucket},
    pool::{Admission, Claim, Lease, Pool},
    routes::{Owner, WorkerIo},
};
use crate::{
    dataplane::fastpath::{FastSlot, SessionMaps},
    net::batch,
    report::SessionRow,
    users::UserDb,
};

/// PPP control frames per second a call may send (LCP echo, renegotiation
/// and CCP resets need a handful).
pub const CONTROL_RATE: u32 = 50;

/// A protocol's PPP policy and what its calls share.
pub struct PppService {
    pub protocol: &'static str,
    pub link: LinkConfig,
    pub dns: Vec<Ipv4Addr>,
    /// The gateway's address on vpn0 and the routes pushed to clients: the
    /// answer to a DHCPINFORM (Windows asks for routes that way).
    pub server: Ipv4Addr,
    pub routes: Vec<(Ipv4Addr, u8)>,
    pub pool: Pool,
    pub users: Arc<Mutex<UserDb>>,
    /// None: this protocol has no in-kernel path.
    pub maps: Option<Arc<SessionMaps>>,
    /// Failed logins of every protocol (backoff).
    pub logins: Arc<LoginGuard>,
    /// When set, logins are decided by the RADIUS servers.
    pub radius: Option<Arc<crate::daemon::radius::Radius>>,
    pub counters: PppCounters,
}

#[derive(Default)]
pub struct PppCounters {
    /// Frames that carried nothing for us (malformed, not ready, spoofed source).
    pub dropped: AtomicU64,
    /// Control frames over the call's rate.
    pub flood: AtomicU64,
    pub login_failed: AtomicU64,
    /// Logins refused unchecked: too many failures from that address.
    pub login_throttled: AtomicU64,
    /// DHCPINFORMs answered (with the pushed routes and DNS).
    pub dhcp_informs: AtomicU64,
    /// Frames to a client the carrier could not send (its socket refused
    /// them, or IPsec had no outbound SA).
    pub send_failed: AtomicU64,
}

/// What the kernel needs to carry a call (its maps' key and entry).
pub struct FastPathEntry {
    pub key: TunnelKey,
    pub entry: SessionEntry,
}

/// How a tunnel protocol moves one call's PPP frames.
pub trait Carrier: Send + Sync + 'static {
    /// The carrier's per-call mutable state (sequence numbers), kept under
    /// the call's lock with the PPP state.
    type Wire: Send;
    fn row_id(&self) -> u64;
    /// The client, for log lines and `sessions`.
    fn peer(&self) -> String;
    /// The client's address (login backoff).
    fn peer_ip(&self) -> std::net::IpAddr;
    /// Encapsulates one PPP frame and sends it to the client; false if it
    /// could not leave (counted by the caller as `send_failed`).
    fn send_frame(&self, wire: &mut Self::Wire, fast: Option<&FastSlot>, frame: &[u8]) -> bool;
    /// The map entries that put this call on the in-kernel path, if the
    /// carrier has one. `addr`: the client's inner address.
    fn fast_path(&self, addr: Ipv4Addr) -> Option<FastPathEntry>;
    /// Whether the call's carrier state allows the in-kernel path now.
    fn wants_fast_path(&self, _wire: &Self::Wire) -> bool {
        true
    }
    /// Runs with the fast-path slot before the kernel can find the call.
    fn prepare_fast(&self, _wire: &mut Self::Wire, _slot: u32) {}
    /// Runs with the fast-path slot as the call leaves the kernel: what the
    /// kernel moved on (shared sequence numbers) becomes the call's own again.
    fn leave_fast(&self, _wire: &mut Self::Wire, _slot: u32) {}
    /// The link is over and done terminating: the control connection
    /// should clear the call.
    fn link_ended(&self);
}

/// The PPP side of a call.
pub struct PppState {
    pub link: Link,
    pub user: Option<String>,
    pub lease: Option<Lease>,
    pub encryption: &'static str,
    /// While the kernel carries this call's IP packets.
    pub fast: Option<FastSlot>,
    budget: TokenBucket,
    flood_logged: bool,
    /// The last login attempt was refused unchecked (backoff).
    throttled: bool,
    /// What the RADIUS server granted at login, until the address is leased.
    grant: Option<vpn_proto::radius::login::Grant>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

pub struct CallState<W> {
    pub ppp: PppState,
    pub wire: W,
}

/// One PPP call over carrier `C`.
pub struct Call<C: Carrier> {
    pub carrier: C,
    /// The call's place under `max_sessions`, held from set-up on.
    _admission: Admission,
    pub service: Arc<PppService>,
    pub started_at: u64,
    pub state: Mutex<CallState<C::Wire>>,
    me: Weak<Call<C>>,
}

impl<C: Carrier> Call<C> {
    /// A call whose tunnel is up: LCP starts at once.
    pub fn new(
        carrier: C,
        wire: C::Wire,
        service: Arc<PppService>,
        admission: Admission,
    ) -> Arc<Call<C>> {
        let now = Instant::now();
        let link = Link::new(service.link.clone(), rand::random(), now);
        Arc::new_cyclic(|me| Call {
            carrier,
            _admission: admission,
            started_at: crate::daemon::unix_now(),
            state: Mutex::new(CallState {
                ppp: PppState {
                    link,
                    user: None,
                    lease: None,
                    encryption: "none",
                    fast: None,
                    budget: TokenBucket::new(CONTROL_RATE, now),
                    flood_logged: false,
                    throttled: false,
                    grant: None,
                    rx_packets: 0,
                    rx_bytes: 0,
                    tx_packets: 0,
                    tx_bytes: 0,
                    drops: 0,
                },
                wire,
            }),
            service,
            me: me.clone(),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, CallState<C::Wire>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.lock().ppp.lease.as_ref().map(Lease::addr)
    }

    /// The link is over and done terminating (`LinkEvent::Finished`).
    pub fn is_finished(&self) -> bool {
        self.lock().ppp.link.is_finished()
    }

    /// A PPP frame from the client (its carrier header removed). IP goes to
    /// `tun` if its source is the call's address; control frames are
    /// rate-limited, then fed to the link.
    pub fn frame_in(&self, s: &mut CallState<C::Wire>, frame: &mut [u8], tun: RawFd, now: Instant) {
        let svc = &self.service;
        let p = &mut s.ppp;
        let is_data = matches!(parse_frame(frame), Some((0x0021 | 0x00fd, _)));
        if !is_data && !p.budget.take(now) {
            p.drops += 1;
            svc.counters.flood.fetch_add(1, Ordering::Relaxed);
            if !std::mem::replace(&mut p.flood_logged, true) {
                log::warn!(
                    "{}: session {} ({}): PPP control flood from {}; dropping control frames over {CONTROL_RATE} per second",
                    svc.protocol,
                    self.carrier.row_id(),
                    p.user.as_deref().unwrap_or("-"),
                    self.carrier.peer(),
                );
            }
            return;
        }
        let result = p.link.handle_frame(now, frame);
        match result {
            Ok(Some(range)) => {
                let ip = &frame[range];
                let addr = p.lease.as_ref().map(Lease::addr);
                // Anti-spoofing: only the call's own address may be a source.
                if ip.len() >= 20 && addr == Some(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])) {
                    p.rx_packets += 1;
                    p.rx_bytes += ip.len() as u64;
                    let inform = InformAnswer {
                        server: svc.server,
                        routes: &svc.routes,
                        dns: &svc.dns,
                    };
                    let client = addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
                    match dhcp::answer_inform(ip, client, &inform) {
                        Some(ack) => {
                            svc.counters.dhcp_informs.fetch_add(1, Ordering::Relaxed);
                            let mut out = Vec::with_capacity(ack.len() + 8);
                            if p.link.encap_ip(&ack, &mut out) {
                                self.send_frame(&mut s.wire, p.fast.as_ref(), &out);
                            }
                        }
                        None => {
                            let _ = batch::write_fd_vnet(tun, ip);
                        }
                    }
                } else {
                    p.drops += 1;
                    svc.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => {}
            Err(_) => {
                p.drops += 1;
                svc.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.process(s, now);
    }

    /// Runs the link's timers (restart, LCP echo), then `process`.
    pub fn tick(&self, s: &mut CallState<C::Wire>, now: Instant) {
        if s.ppp.link.poll_timeout().is_some_and(|t| now >= t) {
            s.ppp.link.handle_timeout(now);
        }
        self.process(s, now);
    }

    /// Ends the link (Terminate-Request), e.g. `vpn-ctl kill`.
    pub fn close(&self, reason: &str) {
        let now = Instant::now();
        let mut s = self.lock();
        s.ppp.link.close(now, reason);
        self.process(&mut s, now);
    }

    /// Acts on the link's events and sends what it queued.
    pub fn process(&self, s: &mut CallState<C::Wire>, now: Instant) {
        while let Some(ev) = s.ppp.link.poll() {
            self.event(s, ev, now);
        }
        let CallState { ppp, wire } = s;
        while let Some(f) = ppp.link.poll_transmit() {
            self.send_frame(wire, ppp.fast.as_ref(), &f);
        }
    }

    fn event(&self, s: &mut CallState<C::Wire>, ev: LinkEvent, now: Instant) {
        let svc = &self.service;
        let (proto, row) = (svc.protocol, self.carrier.row_id());
        match ev {
            LinkEvent::Verify(creds) => self.verify(s, creds, now),
            LinkEvent::Authenticated { user } => {
                svc.logins.succeeded(&user, self.carrier.peer_ip());
                let (mut static_ip, reserved) = {
                    let db = svc.users.lock().unwrap_or_else(|e| e.into_inner());
                    (db.find(&user).and_then(|u| u.ip), db.reserved_addresses())
                };
                let grant = s.ppp.grant.take();
                if svc.radius.is_some() {
                    // The server's Framed-IP-Address, not the local users'.
                    static_ip = grant.as_ref().and_then(|g| g.framed_ip);
                }
                let claim = Claim {
                    user: &user,
                    protocol: proto,
                    row_id: row,
                    static_ip,
                    want_ip: None,
                    reserved: &reserved,
                };
                match svc.pool.lease(&claim) {
                    Ok(lease) => {
                        let ip = lease.addr();
                        if let Some(me) = self.me.upgrade() {
                            let owner: Arc<dyn Owner> = me;
                            lease.route_to(Arc::downgrade(&owner));
                        }
                        s.ppp.lease = Some(lease);
                        s.ppp.user = Some(user.clone());
                        if let (Some(radius), Some(grant)) = (&svc.radius, grant) {
                            radius.set_grant(row, grant);
                        }
                        s.ppp
                            .link
                            .set_addresses(now, svc.pool.gateway(), ip, svc.dns.clone());
                        log::info!("{proto}: session {row}: `{user}` logged in, address {ip}");
                    }
                    Err(refusal) => {
                        log::warn!("{proto}: session {row}: no address for `{user}`: {refusal}");
                        s.ppp.link.close(now, &refusal.for_client());
                    }
                }
            }
            LinkEvent::AuthFailed { user } => {
                if std::mem::take(&mut s.ppp.throttled) {
                    svc.counters.login_throttled.fetch_add(1, Ordering::Relaxed);
                    warn_unauthenticated(|| {
                        format!(
                            "{proto}: login of `{}` from {} refused unchecked: too many failed logins",
                            crate::users::printable(&user),
                            self.carrier.peer()
                        )
                    });
                } else {
                    svc.logins.failed(&user, self.carrier.peer_ip(), now);
                    svc.counters.login_failed.fetch_add(1, Ordering::Relaxed);
                    warn_unauthenticated(|| {
                        format!(
                            "{proto}: login failed for user `{}` from {}: wrong user name or password",
                            crate::users::printable(&user),
                            self.carrier.peer()
                        )
                    });
                }
            }
            LinkEvent::Up { encryption } => {
                s.ppp.encryption = encryption;
                if encryption == "none" {
                    self.enable_fast_path(s);
                }
                log::info!(
                    "{proto}: session {row} up: {} at {}, encryption {encryption}",
                    s.ppp.user.as_deref().unwrap_or("-"),
                    s.ppp
                        .lease
                        .as_ref()
                        .map(|l| l.addr().to_string())
                        .unwrap_or_default()
                );
            }
            LinkEvent::Down { reason } => {
                log::info!("{proto}: session {row} link down: {reason}");
                // Out of the kernel at once; the address goes with the call.
                self.leave_kernel(s);
            }
            // The peer has had its Terminate-Request (or acknowledgement):
            // now the call may be cleared under it.
            LinkEvent::Finished => self.carrier.link_ended(),
        }
    }

    /// Decides on the credentials the peer presented: refused unchecked
    /// past the login backoff, else by the RADIUS servers (the verdict
    /// comes back later) or against the user's NT hash.
    fn verify(&self, s: &mut CallState<C::Wire>, creds: Credentials, now: Instant) {
        let svc = &self.service;
        if svc
            .logins
            .check(creds.user(), self.carrier.peer_ip(), now)
            .is_some()
        {
            s.ppp.throttled = true;
            s.ppp.link.auth_verdict(now, Verdict::reject());
            return;
        }
        if let Some(radius) = &svc.radius {
            let row = self.carrier.row_id();
            let info = radius.session_info(creds.user(), self.carrier.peer_ip(), row, true);
            let me = self.me.clone();
            radius.ppp_login(creds, info, move |verdict, grant| {
                let Some(call) = me.upgrade() else { return };
                let mut s = call.lock();
                s.ppp.grant = grant;
                let now = Instant::now();
                s.ppp.link.auth_verdict(now, verdict);
                call.process(&mut s, now);
            });
            return;
        }
        let hash = {
            let db = svc.users.lock().unwrap_or_else(|e| e.into_inner());
            // Native-only users have no NT hash: PPP logins fail for them.
            db.find(creds.user()).and_then(|u| u.nt_hash())
        };
        s.ppp.link.auth_verdict(now, creds.check(hash.as_ref()));
    }

    /// Moves an unencrypted call's IP packets into the kernel (decisions #27).
    fn enable_fast_path(&self, s: &mut CallState<C::Wire>) {
        let row = self.carrier.row_id();
        let (Some(maps), Some(addr)) = (&self.service.maps, s.ppp.lease.as_ref().map(Lease::addr))
        else {
            return;
        };
        if !self.carrier.wants_fast_path(&s.wire) {
            return;
        }
        let Some(FastPathEntry { key, entry }) = self.carrier.fast_path(addr) else {
            return;
        };
        let wire = &mut s.wire;
        match maps.install(key, entry, |slot| self.carrier.prepare_fast(wire, slot)) {
            Ok(slot) => {
                s.ppp.fast = Some(slot);
                log::info!(
                    "{}: session {row} on the in-kernel fast path",
                    self.service.protocol
                );
            }
            Err(e) => log::warn!(
                "{}: session {row} stays in userspace: {e:#}",
                self.service.protocol
            ),
        }
    }

    /// One frame to the client by the carrier; a refusal is counted.
    fn send_frame(&self, wire: &mut C::Wire, fast: Option<&FastSlot>, frame: &[u8]) -> bool {
        let sent = self.carrier.send_frame(wire, fast, frame);
        if !sent {
            let c = &self.service.counters;
            c.send_failed.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Takes the call out of the kernel, keeping what the kernel counted in
    /// the call's own totals (the end-of-session line reports them) and
    /// the carrier's sequence state (frames still to send are numbered on).
    fn leave_kernel(&self, s: &mut CallState<C::Wire>) {
        if let Some(fast) = s.ppp.fast.take() {
            self.carrier.leave_fast(&mut s.wire, fast.index());
            let k = fast.stats();
            let p = &mut s.ppp;
            p.rx_packets += k.rx_packets;
            p.rx_bytes += k.rx_bytes;
            p.tx_packets += k.tx_packets;
            p.tx_bytes += k.tx_bytes;
        }
    }

    /// The call is over (its tunnel said so, or its link ended): the kernel
    /// and the pool let go of it now, even while a reader still holds it.
    pub fn end(&self, why: &str) {
        self.leave_kernel(&mut self.lock());
        if let Some(r) = &self.service.radius {
            r.finals.record(self.row(self.carrier.peer()));
        }
        let mut s = self.lock();
        let p = &s.ppp;
        log::info!(
            "{}: session {} ({}, {}) ended: {why}; {}",
            self.service.protocol,
            self.carrier.row_id(),
            p.user.as_deref().unwrap_or("-"),
            p.lease
                .as_ref()
                .map_or_else(|| "-".into(), |l| l.addr().to_string()),
            crate::report::human::traffic(p.rx_bytes, p.tx_bytes)
        );
        s.ppp.lease = None;
    }

    /// The call's row in `sessions`, fast-path counters included.
    pub fn row(&self, peer: String) -> SessionRow {
        let s = self.lock();
        let p = &s.ppp;
        let fast = p.fast.as_ref().map(FastSlot::stats).unwrap_or_default();
        SessionRow {
            id: self.carrier.row_id(),
            protocol: self.service.protocol.into(),
            user: p.user.clone().unwrap_or_default(),
            peer,
            assigned_ip: p
                .lease
                .as_ref()
                .map(|l| l.addr().to_string())
                .unwrap_or_default(),
            state: if p.link.is_up() { "up" } else { "negotiating" }.into(),
            started_at: self.started_at,
            rx_bytes: p.rx_bytes + fast.rx_bytes,
            rx_packets: p.rx_packets + fast.rx_packets,
            tx_bytes: p.tx_bytes + fast.tx_bytes,
            tx_packets: p.tx_packets + fast.tx_packets,
            fast_path: p.fast.is_some(),
            fast_path_rx_packets: fast.rx_packets,
            fast_path_tx_packets: fast.tx_packets,
            encryption: p.encryption.into(),
            drops: p.drops,
        }
    }
}

impl<C: Carrier> Owner for Call<C> {
    /// A packet from vpn0 for this call's address: PPP (MPPE if agreed), carrier, out.
    fn send_ip(&self, ip: &[u8], _now: Instant, _io: &mut WorkerIo) -> bool {
        let mut s = self.lock();
        let CallState { ppp, wire } = &mut *s;
        let mut frame = Vec::with_capacity(ip.len() + 8);
        if !ppp.link.encap_ip(ip, &mut frame) {
            return false;
        }
        if !self.send_frame(wire, ppp.fast.as_ref(), &frame) {
            ppp.drops += 1;
            return true; // counted as send_failed, not the caller's drop
        }
        ppp.tx_packets += 1;
        ppp.tx_bytes += ip.len() as u64;
        true
    }
}
