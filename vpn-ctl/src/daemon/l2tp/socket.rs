//! The L2TP worker: one thread reads UDP 1701, feeds control messages to
//! their tunnel's engine and data messages to their call's PPP link (IP to
//! vpn0), and every tick runs the tunnels' and calls' timers and clears
//! calls whose PPP link ended.
use std::{
    net::{SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use vpn_proto::l2tp::{
    consts::{ERR_NONE, ERR_NO_RESOURCES, STOP_GENERAL_ERROR, STOP_NOT_AUTHORIZED},
    header::Header,
    tunnel::{Bad, Tunnel, TunnelEvent},
};

use super::{
    link::{Link, LinkId},
    DataSeq, L2tp, L2tpCall, TunnelEntry, Udp,
};
use crate::{
    daemon::{
        gateway::{limits::warn_unauthenticated, ppp::Call},
        Shared,
    },
    net::batch,
};

const TICK: Duration = Duration::from_millis(100);

/// Starts the worker. `tun`: a vpn0 queue to write decapsulated IP to.
pub fn spawn(shared: Arc<Shared>, tun: OwnedFd) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("vpn-l2tp".into())
        .spawn(move || {
            if let Err(e) = run(&shared, tun.as_raw_fd()) {
                log::error!("l2tp: worker stopped: {e}");
            }
        })
        .expect("spawn L2TP thread")
}

fn run(shared: &Shared, tun: RawFd) -> std::io::Result<()> {
    let Some(l2tp) = &shared.l2tp else {
        return Ok(());
    };
    let fd = l2tp.socket.as_raw_fd();
    let received = shared
        .base
        .listeners
        .iter()
        .position(|l| l.service == "l2tp")
        .and_then(|i| shared.received.get(i));
    let mut rx = batch::RecvBatch::new();
    let mut last_tick = Instant::now();
    while !shared.stopping.load(Ordering::Relaxed) {
        if batch::poll_readable(&[fd], TICK)?[0] {
            loop {
                let n = rx.recv(fd)?;
                if let Some(r) = received {
                    r.fetch_add(n as u64, Ordering::Relaxed);
                }
                for i in 0..n {
                    let (data, from, truncated) = rx.get(i);
                    let SocketAddr::V4(from) = from else { continue };
                    if truncated {
                        l2tp.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let link = Link::Udp {
                        peer: from,
                        socket: l2tp.socket.clone(),
                    };
                    deliver(l2tp, data, link, tun);
                }
                if n < batch::BATCH {
                    break;
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            tick(l2tp, now);
        }
    }
    Ok(())
}

fn count(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One L2TP datagram from `link` (plain UDP, or decrypted from IPsec).
pub fn deliver(l2tp: &L2tp, data: &mut [u8], link: Link, tun: RawFd) {
    let c = &l2tp.counters;
    let Ok(h) = Header::decode(data) else {
        return count(&c.malformed);
    };
    let now = Instant::now();
    if !h.control {
        let call = l2tp.read().calls.get(&(h.tunnel_id, h.session_id)).cloned();
        let Some(call) = call else {
            return count(&c.unknown_session);
        };
        if call.carrier.link.id() != link.id() {
            return count(&c.wrong_peer);
        }
        let mut s = call.lock();
        if let Some((ns, _)) = h.seq {
            s.wire.enabled = true;
            s.wire.nr = ns.wrapping_add(1);
        }
        if h.payload_at < h.end {
            call.frame_in(&mut s, &mut data[h.payload_at..h.end], tun, now);
        }
        return;
    }
    if h.tunnel_id == 0 {
        return new_tunnel(l2tp, data, link, now);
    }
    let entry = l2tp.read().tunnels.get(&h.tunnel_id).cloned();
    let Some(entry) = entry else {
        return count(&c.unknown_tunnel);
    };
    if entry.link.id() != link.id() {
        return count(&c.wrong_peer);
    }
    let result = entry
        .engine
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .handle_datagram(now, data);
    count_bad(l2tp, result);
    drive(l2tp, &entry, now);
}

fn count_bad(l2tp: &L2tp, r: Result<(), Bad>) {
    let c = &l2tp.counters;
    match r {
        Ok(()) => {}
        Err(Bad::Malformed) => count(&c.malformed),
        Err(Bad::OutOfWindow) => count(&c.out_of_window),
        Err(Bad::Duplicate) => count(&c.duplicate),
        Err(Bad::Hidden) => count(&c.hidden_unreadable),
    }
}

/// An SCCRQ: its retransmission goes to the tunnel it opened; a new one
/// opens a tunnel (or is refused with StopCCN, within the limits).
fn new_tunnel(l2tp: &L2tp, data: &[u8], link: Link, now: Instant) {
    let from = link.endpoint();
    let c = &l2tp.counters;
    let policy = &l2tp.policy;
    let Some((peer_id, window)) = Tunnel::sccrq_ids(data, policy.tunnel.secret.as_deref()) else {
        return count(&c.malformed);
    };
    let existing = {
        let t = l2tp.read();
        t.by_peer
            .get(&(link.id(), peer_id))
            .and_then(|id| t.tunnels.get(id))
            .cloned()
    };
    if let Some(entry) = existing {
        let r = entry
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle_datagram(now, data);
        count_bad(l2tp, r);
        return drive(l2tp, &entry, now);
    }
    let (half_open, from_addr) = {
        let t = l2tp.read();
        let half_open = t
            .tunnels
            .values()
            .filter(|e| !e.engine.lock().unwrap_or_else(|e| e.into_inner()).is_up())
            .count();
        let from_addr = t
            .tunnels
            .values()
            .filter(|e| e.link.endpoint().ip() == from.ip())
            .count();
        (half_open, from_addr)
    };
    if half_open >= policy.max_half_open {
        // A flood: no state and no answer, only a counter.
        return count(&c.busy);
    }
    let refusal = if !policy.allow_plain && !link.is_secure() {
        count(&c.plain_refused);
        Some((
            STOP_NOT_AUTHORIZED,
            ERR_NONE,
            "plain L2TP (without IPsec) is disabled on this gateway",
        ))
    } else if from_addr >= policy.max_per_address {
        count(&c.per_address_limit);
        Some((
            STOP_GENERAL_ERROR,
            ERR_NO_RESOURCES,
            "too many tunnels from this address",
        ))
    } else {
        None
    };
    let entry = {
        let mut t = l2tp.write();
        let mut id: u16 = rand::random();
        while id == 0 || t.tunnels.contains_key(&id) {
            id = rand::random();
        }
        let mut engine = Tunnel::new(
            policy.tunnel.clone(),
            id,
            peer_id,
            window,
            rand::random(),
            now,
        );
        match refusal {
            Some((result, error, msg)) => {
                warn_unauthenticated(|| format!("l2tp: tunnel from {from} refused: {msg}"));
                engine.refuse(now, data, result, error, msg);
            }
            None => {
                count_bad(l2tp, engine.handle_datagram(now, data));
                c.tunnels_opened.fetch_add(1, Ordering::Relaxed);
                log::info!("l2tp: tunnel {id} from {from} (its tunnel {peer_id})");
            }
        }
        let entry = Arc::new(TunnelEntry {
            local_id: id,
            peer_id,
            link: link.clone(),
            engine: Mutex::new(engine),
        });
        t.tunnels.insert(id, entry.clone());
        t.by_peer.insert((link.id(), peer_id), id);
        entry
    };
    drive(l2tp, &entry, now);
}

/// Sends what the tunnel queued and acts on its events (outside its lock:
/// calls take their own).
fn drive(l2tp: &L2tp, entry: &Arc<TunnelEntry>, now: Instant) {
    let (events, closed) = {
        let mut e = entry.engine.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(d) = e.poll_transmit() {
            entry.link.send(&d);
        }
        (
            std::iter::from_fn(|| e.poll()).collect::<Vec<_>>(),
            e.is_closed(),
        )
    };
    let id = entry.local_id;
    for ev in events {
        match ev {
            TunnelEvent::Up => log::info!("l2tp: tunnel {id} from {} is up", entry.link.endpoint()),
            TunnelEvent::SessionUp {
                session,
                peer_session,
                sequencing,
            } => {
                let service = match (&entry.link, &l2tp.ppp_ipsec) {
                    (Link::Secure { .. }, Some(s)) => s.clone(),
                    _ => l2tp.ppp.clone(),
                };
                let Ok(admission) = service.pool.admit() else {
                    count(&l2tp.counters.busy);
                    log::warn!(
                        "l2tp: call {session} in tunnel {id} refused: the gateway has reached max_sessions"
                    );
                    let mut e = entry.engine.lock().unwrap_or_else(|e| e.into_inner());
                    e.close_session(now, session, "the gateway has reached its session limit");
                    while let Some(d) = e.poll_transmit() {
                        entry.link.send(&d);
                    }
                    continue;
                };
                let carrier = Udp {
                    local: SocketAddrV4::new(
                        crate::net::route_source(entry.link.endpoint()),
                        l2tp.port,
                    ),
                    row_id: service.pool.next_row_id(),
                    tunnel: id,
                    session,
                    peer_tunnel: entry.peer_id,
                    peer_session,
                    peer: entry.link.endpoint(),
                    link: entry.link.clone(),
                    ended: l2tp.ended.clone(),
                };
                let wire = DataSeq {
                    enabled: sequencing,
                    ..DataSeq::default()
                };
                let call: Arc<L2tpCall> = Call::new(carrier, wire, service, admission);
                log::info!(
                    "l2tp: session {} in tunnel {id} from {} (call {session}, its {peer_session})",
                    call.carrier.row_id,
                    entry.link.endpoint()
                );
                l2tp.write().calls.insert((id, session), call.clone());
                let mut s = call.lock();
                call.process(&mut s, now);
            }
            TunnelEvent::SessionClosed { session, reason } => {
                end_call(l2tp, id, session, &reason);
            }
            TunnelEvent::Closed { reason } => {
                log::info!(
                    "l2tp: tunnel {id} from {} closed: {reason}",
                    entry.link.endpoint()
                );
                end_tunnel_calls(l2tp, id, "its tunnel closed");
            }
        }
    }
    if closed {
        let mut t = l2tp.write();
        t.tunnels.remove(&id);
        t.by_peer.remove(&(entry.link.id(), entry.peer_id));
    }
}

/// Ends every call of tunnel `id`.
fn end_tunnel_calls(l2tp: &L2tp, id: u16, why: &str) {
    let calls: Vec<u16> = l2tp
        .read()
        .calls
        .keys()
        .filter(|(t, _)| *t == id)
        .map(|(_, s)| *s)
        .collect();
    for s in calls {
        end_call(l2tp, id, s, why);
    }
}

/// Forgets a call: its address, route and fast-path entries go with it.
fn end_call(l2tp: &L2tp, tunnel: u16, session: u16, why: &str) {
    if let Some(call) = l2tp.write().calls.remove(&(tunnel, session)) {
        call.end(why);
    }
}

fn tick(l2tp: &L2tp, now: Instant) {
    let ended: Vec<(u16, u16)> =
        std::mem::take(&mut *l2tp.ended.lock().unwrap_or_else(|e| e.into_inner()));
    for (tunnel, session) in ended {
        end_call(l2tp, tunnel, session, "the PPP link ended");
        let entry = l2tp.read().tunnels.get(&tunnel).cloned();
        if let Some(entry) = entry {
            entry
                .engine
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .close_session(now, session, "the PPP link ended");
            drive(l2tp, &entry, now);
        }
    }
    let tunnels: Vec<_> = l2tp.read().tunnels.values().cloned().collect();
    for entry in tunnels {
        {
            let mut e = entry.engine.lock().unwrap_or_else(|e| e.into_inner());
            if e.poll_timeout().is_some_and(|t| now >= t) {
                e.handle_timeout(now);
            }
        }
        drive(l2tp, &entry, now);
    }
    let calls: Vec<_> = l2tp.read().calls.values().cloned().collect();
    for call in calls {
        let mut s = call.lock();
        call.tick(&mut s, now);
    }
}

/// A secure link is gone (its client's IPsec SAs ended): its tunnels and
/// their calls end with it.
pub fn forget_link(l2tp: &L2tp, link: u64, why: &str) {
    let gone: Vec<Arc<TunnelEntry>> = l2tp
        .read()
        .tunnels
        .values()
        .filter(|e| matches!(e.link.id(), LinkId::Secure(id, _) if id == link))
        .cloned()
        .collect();
    for entry in gone {
        let id = entry.local_id;
        log::info!(
            "l2tp: tunnel {id} from {} closed: {why}",
            entry.link.endpoint()
        );
        end_tunnel_calls(l2tp, id, why);
        let mut t = l2tp.write();
        t.tunnels.remove(&id);
        t.by_peer.remove(&(entry.link.id(), entry.peer_id));
    }
}
