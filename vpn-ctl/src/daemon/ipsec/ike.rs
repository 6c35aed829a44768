//! IKE messages to their ISAKMP SA (or a new one, within the half-open
//! limits), and the engine's events turned into ESP SAs, deletions and
//! log lines.
use std::{
    collections::HashMap,
    net::SocketAddrV4,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Instant,
};

use rand::RngCore as _;
use vpn_proto::{
    esp,
    ike::{
        message::Header,
        responder::{ChildTemplate, Endpoints, Host, IkeError, IkeEvent, IkeSa},
    },
};

use super::{
    peer::{OutboundSa, Peer},
    IkeEntry, InboundSa, Ipsec, Tables,
};
use crate::daemon::{gateway::limits::warn_unauthenticated, l2tp::L2tp};

type Key = ([u8; 8], [u8; 8]);

/// Entropy and gateway-unique inbound SPIs for the engine.
struct EngineHost<'a> {
    inbound: &'a HashMap<u32, Arc<InboundSa>>,
    pending: &'a HashMap<u32, OutboundSa>,
    taken: Vec<u32>,
}

impl Host for EngineHost<'_> {
    fn random(&mut self, buf: &mut [u8]) {
        rand::thread_rng().fill_bytes(buf);
    }

    fn new_spi(&mut self) -> u32 {
        loop {
            // 1..=255 are reserved (RFC 4303 §2.1).
            let spi = rand::random::<u32>();
            if spi > 0xff
                && !self.inbound.contains_key(&spi)
                && !self.pending.contains_key(&spi)
                && !self.taken.contains(&spi)
            {
                self.taken.push(spi);
                return spi;
            }
        }
    }
}

fn count_error(ipsec: &Ipsec, e: IkeError) {
    let c = &ipsec.counters;
    let n = match e {
        IkeError::Malformed => &c.ike_malformed,
        IkeError::Unexpected => &c.ike_unexpected,
        IkeError::NoProposal => &c.ike_no_proposal,
        IkeError::AuthFailed => &c.ike_auth_failed,
        IkeError::BadHash => &c.ike_bad_hash,
        IkeError::Busy => &c.ike_busy,
    };
    n.fetch_add(1, Ordering::Relaxed);
}

/// One IKE message from `from` (on 4500 when `natt_port`).
pub fn message(ipsec: &Ipsec, l2tp: &L2tp, msg: &[u8], from: SocketAddrV4, natt_port: bool) {
    let Ok(h) = Header::decode(msg) else {
        return count_error(ipsec, IkeError::Malformed);
    };
    let now = Instant::now();
    let mut t = ipsec.tables();
    let key = if h.rcookie == [0; 8] {
        match t.first.get(&(from, h.icookie)) {
            Some(r) => (h.icookie, *r),
            None => {
                drop(t);
                return first_message(ipsec, l2tp, msg, from, natt_port, now);
            }
        }
    } else {
        (h.icookie, h.rcookie)
    };
    let Some(entry) = t.ike.get_mut(&key) else {
        return count_error(ipsec, IkeError::Unexpected);
    };
    if entry.sa.ends.remote.ip() != from.ip() {
        return count_error(ipsec, IkeError::Unexpected);
    }
    if from != entry.sa.ends.remote {
        // The float to 4500, or a NAT rebinding.
        entry.sa.set_remote(from);
    }
    entry.natt_port |= natt_port;
    let Tables {
        ike, pending_out, ..
    } = &mut *t;
    let entry = ike.get_mut(&key).expect("looked up above");
    let inbound = ipsec.inbound_read();
    let mut host = EngineHost {
        inbound: &inbound,
        pending: pending_out,
        taken: Vec::new(),
    };
    if let Err(e) = entry.sa.handle_message(now, msg, &mut host) {
        log::debug!(
            "ipsec: {from}: exchange {} message {:08x} not taken: {}",
            h.exchange,
            h.message_id,
            e.name()
        );
        count_error(ipsec, e);
        if e == IkeError::AuthFailed {
            warn_unauthenticated(|| {
                format!("ipsec: {from}: authentication failed (wrong pre-shared key?)")
            });
        }
    }
    drop(inbound);
    drive(ipsec, l2tp, &mut t, key, now);
}

fn first_message(
    ipsec: &Ipsec,
    l2tp: &L2tp,
    msg: &[u8],
    from: SocketAddrV4,
    natt_port: bool,
    now: Instant,
) {
    if ipsec.tables().ike.len() >= ipsec.max_ike_sas {
        ipsec.counters.ike_busy.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Ok(permit) = ipsec.half_open.try_enter((*from.ip()).into()) else {
        // A flood: no state, no answer, a counter.
        ipsec
            .counters
            .ike_half_open_limit
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let local = SocketAddrV4::new(
        crate::net::route_source(from),
        if natt_port { 4500 } else { 500 },
    );
    let ends = Endpoints {
        local,
        remote: from,
    };
    let mut t = ipsec.tables();
    let sa = {
        let Tables { pending_out, .. } = &*t;
        let inbound = ipsec.inbound_read();
        let mut host = EngineHost {
            inbound: &inbound,
            pending: pending_out,
            taken: Vec::new(),
        };
        IkeSa::respond(ipsec.cfg.clone(), now, ends, msg, &mut host)
    };
    match sa {
        Err(r) => {
            count_error(ipsec, r.error);
            warn_unauthenticated(|| format!("ipsec: {from}: refused: {}", r.reason));
            if let Some(reply) = r.reply {
                ipsec.sockets.send_ike(from, &reply, natt_port);
            }
        }
        Ok(sa) => {
            let key = (sa.icookie, sa.rcookie);
            if t.ike.contains_key(&key) {
                return; // a responder cookie collision: let the client retry
            }
            log::info!(
                "ipsec: {from}: Main Mode ({}){}",
                sa.algorithms().unwrap_or_default(),
                match sa.natt {
                    Some(v) => format!(", NAT-T {}", v.name()),
                    None => String::new(),
                }
            );
            t.first.insert((from, sa.icookie), sa.rcookie);
            t.ike.insert(
                key,
                IkeEntry {
                    sa,
                    natt_port,
                    half_open: Some(permit),
                },
            );
            drive(ipsec, l2tp, &mut t, key, now);
        }
    }
}

/// Sends what the SA queued and acts on its events.
fn drive(ipsec: &Ipsec, l2tp: &L2tp, t: &mut Tables, key: Key, now: Instant) {
    let Some(entry) = t.ike.get_mut(&key) else {
        return;
    };
    let remote = entry.sa.ends.remote;
    let natt = entry.natt_port;
    // Sent after the events are acted on: the third message of a Quick
    // Mode the gateway started goes out once its SA pair is in the tables,
    // as the client may send on the pair the moment it has it.
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| entry.sa.poll_transmit()).collect();
    let events: Vec<IkeEvent> = std::iter::from_fn(|| entry.sa.poll()).collect();
    let mut closed = false;
    for ev in events {
        match ev {
            IkeEvent::Established { initial_contact } => {
                ipsec
                    .counters
                    .ike_established
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(e) = t.ike.get_mut(&key) {
                    e.half_open = None;
                }
                log::info!(
                    "ipsec: {remote}: ISAKMP SA up{}",
                    if initial_contact {
                        " (initial contact)"
                    } else {
                        ""
                    }
                );
                if initial_contact {
                    initial_contact_from(ipsec, l2tp, t, key, remote);
                }
            }
            IkeEvent::InitialContact => initial_contact_from(ipsec, l2tp, t, key, remote),
            IkeEvent::Child(c) => {
                let peer = peer_for(ipsec, t, remote);
                let inbound = esp::Inbound::new(c.spi_in, c.transform, &c.keymat_in);
                let out = OutboundSa {
                    esp: esp::Outbound::new(c.spi_out, c.transform, &c.keymat_out),
                    udp: c.udp_encap,
                };
                log::info!(
                    "ipsec: {remote}: ESP SA in {:08x} out {:08x}: {}{}, {} s",
                    c.spi_in,
                    c.spi_out,
                    c.transform.name(),
                    if c.udp_encap { " in UDP" } else { "" },
                    c.lifetime.as_secs()
                );
                let first = {
                    let mut o = peer.out.lock().unwrap_or_else(|e| e.into_inner());
                    let first = o.is_none();
                    if first {
                        *o = Some(out);
                        None
                    } else {
                        Some(out)
                    }
                };
                if let Some(out) = first {
                    // A rekey: the new outbound SA once the client installed it.
                    t.pending_out.insert(c.spi_in, out);
                }
                ipsec.spis.insert(c.spi_in, c.udp_encap);
                let mut table = ipsec.inbound_write();
                // Older pairs of this client are replaced: no gateway rekey for them.
                for old in table.values().filter(|v| Arc::ptr_eq(&v.peer, &peer)) {
                    old.superseded.store(true, Ordering::Relaxed);
                }
                let expires = now + c.lifetime;
                table.insert(
                    c.spi_in,
                    Arc::new(InboundSa {
                        peer,
                        esp: Mutex::new(inbound),
                        udp: c.udp_encap,
                        spi_out: c.spi_out,
                        ike: key,
                        expires,
                        rx_packets: Default::default(),
                        rekey_at: expires - super::rekey_margin(c.lifetime).min(c.lifetime / 2),
                        template: c.template.clone(),
                        superseded: Default::default(),
                    }),
                );
            }
            IkeEvent::ChildActive { spi_in } => activate(ipsec, t, spi_in),
            IkeEvent::DeleteChild { spi } => {
                let found = ipsec
                    .inbound_read()
                    .iter()
                    .find(|(k, v)| **k == spi || v.spi_out == spi)
                    .map(|(k, _)| *k);
                if let Some(spi_in) = found {
                    log::info!("ipsec: {remote}: the client deleted ESP SA {spi_in:08x}");
                    remove_child(ipsec, l2tp, t, spi_in, "the client deleted its IPsec SA");
                }
            }
            IkeEvent::Refusal { reason } => log::warn!("ipsec: {remote}: {reason}"),
            IkeEvent::Alive => {}
            IkeEvent::Closed { reason } => {
                log::info!("ipsec: {remote}: ISAKMP SA closed: {reason}");
                closed = true;
            }
        }
    }
    for m in &out {
        ipsec.sockets.send_ike(remote, m, natt);
    }
    if closed {
        if let Some(e) = t.ike.remove(&key) {
            t.first.remove(&(e.sa.ends.remote, e.sa.icookie));
            t.first.retain(|_, r| *r != key.1);
        }
    }
}

/// The client's IPsec state (one per IKE endpoint), created on first use.
fn peer_for(ipsec: &Ipsec, t: &mut Tables, remote: SocketAddrV4) -> Arc<Peer> {
    if let Some(p) = t.peers.get(&remote) {
        return p.clone();
    }
    t.next_peer_id += 1;
    let p = Arc::new(Peer {
        id: t.next_peer_id,
        endpoint: Mutex::new(remote),
        out: Mutex::new(None),
        sockets: ipsec.sockets.clone(),
        counters: ipsec.counters.clone(),
        tx_packets: Default::default(),
    });
    t.peers.insert(remote, p.clone());
    p
}

/// INITIAL-CONTACT: the client at exactly this endpoint (address *and*
/// port) restarted, so its older SAs are stale. Other clients behind the
/// same NAT address have other ports and are untouched.
fn initial_contact_from(
    ipsec: &Ipsec,
    l2tp: &L2tp,
    t: &mut Tables,
    key: Key,
    remote: SocketAddrV4,
) {
    let stale: Vec<Key> = t
        .ike
        .iter()
        .filter(|(k, e)| **k != key && e.sa.ends.remote == remote)
        .map(|(k, _)| *k)
        .collect();
    for k in stale {
        if let Some(e) = t.ike.remove(&k) {
            t.first.remove(&(e.sa.ends.remote, e.sa.icookie));
        }
    }
    if let Some(peer) = t.peers.get(&remote).cloned() {
        let spis: Vec<u32> = ipsec
            .inbound_read()
            .iter()
            .filter(|(_, v)| Arc::ptr_eq(&v.peer, &peer))
            .map(|(k, _)| *k)
            .collect();
        for spi in spis {
            remove_child(
                ipsec,
                l2tp,
                t,
                spi,
                "the client restarted (initial contact)",
            );
        }
    }
}

/// The client has the SA pair of `spi_in`: its outbound half, if still
/// waiting, becomes the one the gateway sends on.
pub fn activate(ipsec: &Ipsec, t: &mut Tables, spi_in: u32) {
    if let Some(out) = t.pending_out.remove(&spi_in) {
        if let Some(sa) = ipsec.inbound_read().get(&spi_in) {
            let remote = *sa.peer.endpoint.lock().unwrap_or_else(|e| e.into_inner());
            log::info!(
                "ipsec: {remote}: sending on ESP SA out {:08x} (the client has the pair)",
                out.esp.spi
            );
            *sa.peer.out.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
        }
    }
}

/// Drops an inbound ESP SA (and its outbound half); when the client has
/// none left, its L2TP tunnels end.
fn remove_child(ipsec: &Ipsec, l2tp: &L2tp, t: &mut Tables, spi_in: u32, why: &str) {
    let Some(sa) = ipsec.inbound_write().remove(&spi_in) else {
        return;
    };
    ipsec.spis.remove(spi_in);
    t.pending_out.remove(&spi_in);
    let gone = {
        let mut o = sa.peer.out.lock().unwrap_or_else(|e| e.into_inner());
        let gone = o.as_ref().is_some_and(|o| o.esp.spi == sa.spi_out);
        if gone {
            *o = None;
        }
        gone
    };
    if gone {
        // A newer pair still waiting for the client takes over (a client
        // that deletes the old pair has the new one).
        let waiting = ipsec
            .inbound_read()
            .iter()
            .filter(|(k, v)| Arc::ptr_eq(&v.peer, &sa.peer) && t.pending_out.contains_key(k))
            .max_by_key(|(_, v)| v.expires)
            .map(|(k, _)| *k);
        if let Some(spi) = waiting {
            activate(ipsec, t, spi);
        }
    }
    let left = ipsec
        .inbound_read()
        .values()
        .any(|v| Arc::ptr_eq(&v.peer, &sa.peer));
    if !left {
        t.peers.retain(|_, p| !Arc::ptr_eq(p, &sa.peer));
        crate::daemon::l2tp::forget_link(l2tp, sa.peer.id, why);
    }
}

/// Deletes an ISAKMP SA, telling the client.
pub fn close(ipsec: &Ipsec, t: &mut Tables, key: Key, why: &str) {
    let Tables {
        ike, pending_out, ..
    } = t;
    let Some(e) = ike.get_mut(&key) else {
        return;
    };
    let inbound = ipsec.inbound_read();
    let mut host = EngineHost {
        inbound: &inbound,
        pending: pending_out,
        taken: Vec::new(),
    };
    e.sa.close(why, &mut host);
    while let Some(m) = e.sa.poll_transmit() {
        ipsec.sockets.send_ike(e.sa.ends.remote, &m, e.natt_port);
    }
    drop(inbound);
    if let Some(e) = t.ike.remove(&key) {
        t.first.remove(&(e.sa.ends.remote, e.sa.icookie));
    }
}

/// Runs `f` on the ISAKMP SA `key` with a host that knows the SPIs in use.
fn with_engine(
    ipsec: &Ipsec,
    t: &mut Tables,
    key: Key,
    f: impl FnOnce(&mut IkeSa, &mut EngineHost),
) {
    let Tables {
        ike, pending_out, ..
    } = t;
    let Some(e) = ike.get_mut(&key) else { return };
    let inbound = ipsec.inbound_read();
    let mut host = EngineHost {
        inbound: &inbound,
        pending: pending_out,
        taken: Vec::new(),
    };
    f(&mut e.sa, &mut host);
}

/// The ISAKMP SA a Quick Mode the gateway starts for `key`'s child goes
/// on: the newest one up with the same client (its address and port). A
/// client that reauthenticated (a new Main Mode) ignores Quick Modes on the
/// ISAKMP SA it is replacing, and the child would expire unrenewed.
fn newest_with_client(t: &Tables, key: Key) -> Key {
    let Some(client) = t.ike.get(&key).map(|e| e.sa.ends.remote) else {
        return key;
    };
    newest(
        client,
        t.ike
            .iter()
            .filter(|(_, e)| e.sa.is_up())
            .map(|(k, e)| (*k, e.sa.ends.remote, e.sa.created())),
    )
    .unwrap_or(key)
}

/// The newest of `sas` (key, client, created) whose client is `client`.
fn newest(
    client: SocketAddrV4,
    sas: impl Iterator<Item = (Key, SocketAddrV4, Instant)>,
) -> Option<Key> {
    sas.filter(|(_, c, _)| *c == client)
        .max_by_key(|(_, _, created)| *created)
        .map(|(k, _, _)| k)
}

/// Timers: Main Modes past their deadline, ISAKMP SAs past their
/// lifetime, ESP SAs past theirs (deleted, with a Delete to the client).
pub fn tick(ipsec: &Ipsec, l2tp: &L2tp, now: Instant) {
    let mut t = ipsec.tables();
    let due: Vec<Key> = t
        .ike
        .iter()
        .filter(|(_, e)| e.sa.poll_timeout().is_some_and(|d| now >= d))
        .map(|(k, _)| *k)
        .collect();
    for key in due {
        with_engine(ipsec, &mut t, key, |sa, host| sa.handle_timeout(now, host));
        drive(ipsec, l2tp, &mut t, key, now);
    }
    // ESP SAs near their end whose client did not rekey: the gateway does.
    let due: Vec<(u32, Key, ChildTemplate)> = ipsec
        .inbound_read()
        .iter()
        .filter(|(_, v)| now >= v.rekey_at && !v.superseded.swap(true, Ordering::Relaxed))
        .map(|(k, v)| (*k, v.ike, v.template.clone()))
        .collect();
    for (spi, key, template) in due {
        let key = newest_with_client(&t, key);
        with_engine(ipsec, &mut t, key, |sa, host| {
            if sa.rekey_child(now, &template, host) {
                log::info!(
                    "ipsec: {}: ESP SA {spi:08x} ends soon and the client has not rekeyed: the gateway starts a Quick Mode",
                    sa.ends.remote
                );
            }
        });
        drive(ipsec, l2tp, &mut t, key, now);
    }
    let expired: Vec<(u32, Key)> = ipsec
        .inbound_read()
        .iter()
        .filter(|(_, v)| now >= v.expires)
        .map(|(k, v)| (*k, v.ike))
        .collect();
    for (spi, key) in expired {
        log::info!("ipsec: ESP SA {spi:08x} expired");
        if let Some(e) = t.ike.get_mut(&key) {
            let mut host = EngineHost {
                inbound: &HashMap::new(),
                pending: &HashMap::new(),
                taken: Vec::new(),
            };
            e.sa.delete_child(spi, &mut host);
            let (remote, natt) = (e.sa.ends.remote, e.natt_port);
            while let Some(m) = e.sa.poll_transmit() {
                ipsec.sockets.send_ike(remote, &m, natt);
            }
        }
        remove_child(ipsec, l2tp, &mut t, spi, "its IPsec SA expired");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_newest_isakmp_sa_of_the_same_client_is_chosen() {
        let (a, b) = (
            "198.18.2.2:4500".parse().unwrap(),
            "198.18.2.2:4501".parse().unwrap(),
        );
        let t0 = Instant::now();
        let key = |n: u8| ([n; 8], [n; 8]);
        let sas = [
            (key(1), a, t0),
            (key(2), a, t0 + Duration::from_secs(75)),
            // Another client behind the same NAT, newer still: not a.
            (key(3), b, t0 + Duration::from_secs(80)),
        ];
        assert_eq!(newest(a, sas.into_iter()), Some(key(2)));
        assert_eq!(newest(b, sas.into_iter()), Some(key(3)));
        let other = "198.18.9.9:4500".parse().unwrap();
        assert_eq!(newest(other, sas.into_iter()), None);
    }
}
