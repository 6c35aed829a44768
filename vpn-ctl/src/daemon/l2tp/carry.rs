//! L2TP over a restart (docs/decisions.md #52): established tunnels, over
//! plain UDP or inside IPsec (named by their client's id, which the IPsec
//! side carries), are handed over with their control channel (Ns/Nr and
//! what the client has not acknowledged) and their calls (data sequencing
//! and the PPP call). Tunnels still being set up are stopped with a
//! StopCCN (their clients redial).
use std::{net::SocketAddrV4, sync::Arc, time::Instant};

use serde::{Deserialize, Serialize};
use vpn_proto::l2tp::tunnel::{Tunnel, TunnelCarry as EngineCarry};

use super::{
    link::{Link, SecureLink},
    DataSeq, L2tp, TunnelEntry, Udp,
};
use crate::daemon::gateway::ppp::{self, Call};

#[derive(Serialize, Deserialize)]
pub struct CallCarry {
    pub session: u16,
    pub peer_session: u16,
    pub peer: SocketAddrV4,
    pub local: SocketAddrV4,
    pub seq_enabled: bool,
    pub ns: u16,
    pub nr: u16,
    pub call: ppp::CallCarry,
}

#[derive(Serialize, Deserialize)]
pub struct TunnelCarry {
    pub peer: SocketAddrV4,
    /// Inside IPsec: the client's id and its inner L2TP port.
    pub secure: Option<(u64, u16)>,
    pub engine: EngineCarry,
    pub calls: Vec<CallCarry>,
}

fn stop(entry: &TunnelEntry, now: Instant) {
    let mut e = entry.engine.lock().unwrap_or_else(|e| e.into_inner());
    e.shut_down(now);
    while let Some(d) = e.poll_transmit() {
        entry.link.send(&d);
    }
}

/// The state of one tunnel and its calls, if all of it can be carried.
fn carry_one(l2tp: &L2tp, entry: &TunnelEntry) -> Option<TunnelCarry> {
    let (peer, secure) = match &entry.link {
        Link::Udp { peer, .. } => (*peer, None),
        Link::Secure { sa, port } => (sa.endpoint(), Some((sa.id(), *port))),
    };
    let engine = entry
        .engine
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .carry()?;
    let t = l2tp.read();
    let mut calls = Vec::new();
    for ((tunnel, _), c) in t.calls.iter() {
        if *tunnel != entry.local_id {
            continue;
        }
        let u = &c.carrier;
        let (call, (seq_enabled, ns, nr)) = c.carry(|w| (w.enabled, w.ns, w.nr))?;
        calls.push(CallCarry {
            session: u.session,
            peer_session: u.peer_session,
            peer: u.peer,
            local: u.local,
            seq_enabled,
            ns,
            nr,
            call,
        });
    }
    Some(TunnelCarry {
        peer,
        secure,
        engine,
        calls,
    })
}

/// Restart, once the data path has stopped: the tunnels that can be
/// carried; the others are stopped. Returns them and the calls ended.
pub fn carry(l2tp: &L2tp) -> (Vec<TunnelCarry>, usize) {
    let now = Instant::now();
    let tunnels: Vec<_> = l2tp.read().tunnels.values().cloned().collect();
    let (mut carried, mut ended) = (Vec::new(), 0);
    for entry in &tunnels {
        match carry_one(l2tp, entry) {
            Some(c) => carried.push(c),
            None => {
                ended += l2tp
                    .read()
                    .calls
                    .keys()
                    .filter(|(t, _)| *t == entry.local_id)
                    .count();
                stop(entry, now);
            }
        }
    }
    (carried, ended)
}

/// The successor: the carried tunnels and calls into the tables; `secure`
/// finds a carried IPsec client by its id. Returns (calls carried, calls
/// lost).
pub fn restore(
    l2tp: &L2tp,
    carried: &[TunnelCarry],
    secure: &dyn Fn(u64) -> Option<Arc<dyn SecureLink>>,
) -> (usize, usize) {
    let now = Instant::now();
    let (mut ok, mut lost) = (0, 0);
    for tc in carried {
        let (link, service) = match tc.secure {
            None => (
                Link::Udp {
                    peer: tc.peer,
                    socket: l2tp.socket.clone(),
                },
                Some(&l2tp.ppp),
            ),
            Some((id, port)) => match secure(id) {
                Some(sa) => (Link::Secure { sa, port }, l2tp.ppp_ipsec.as_ref()),
                None => {
                    lost += tc.calls.len();
                    continue;
                }
            },
        };
        let Some(service) = service else {
            lost += tc.calls.len();
            continue;
        };
        let engine = Tunnel::resume(l2tp.policy.tunnel.clone(), &tc.engine, now);
        let (local_id, peer_id) = (engine.local_id, engine.peer_id);
        let entry = Arc::new(TunnelEntry {
            local_id,
            peer_id,
            link: link.clone(),
            engine: std::sync::Mutex::new(engine),
        });
        let mut t = l2tp.write();
        if t.tunnels.contains_key(&local_id) {
            lost += tc.calls.len();
            continue;
        }
        t.tunnels.insert(local_id, entry);
        t.by_peer.insert((link.id(), peer_id), local_id);
        for c in &tc.calls {
            let carrier = Udp {
                row_id: c.call.row_id,
                tunnel: local_id,
                session: c.session,
                peer_tunnel: peer_id,
                peer_session: c.peer_session,
                peer: c.peer,
                link: link.clone(),
                local: c.local,
                ended: l2tp.ended.clone(),
            };
            let wire = DataSeq {
                enabled: c.seq_enabled,
                ns: c.ns,
                nr: c.nr,
            };
            match Call::resume(carrier, wire, service.clone(), &c.call) {
                Ok(call) => {
                    t.calls.insert((local_id, c.session), call);
                    ok += 1;
                }
                Err(e) => {
                    // Its tunnel's engine still knows it: the client hears
                    // of its end when the link is found gone.
                    lost += 1;
                    l2tp.ended
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((local_id, c.session));
                    log::warn!(
                        "restart: l2tp session {} ({}) not carried over: {e:#}",
                        c.call.row_id,
                        c.call.user
                    );
                }
            }
        }
    }
    (ok, lost)
}
