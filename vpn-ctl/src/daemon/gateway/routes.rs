//! Which session owns an inner address: the vpn0 workers hand each packet
//! the kernel routes into vpn0 to the owner of its destination, whatever
//! its protocol. Entries come and go with a session's [`super::pool::Lease`].
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    os::fd::RawFd,
    sync::{Arc, RwLock, Weak},
    time::Instant,
};

use vpn_proto::offload::Coalescer;

use crate::net::batch::{GsoBatch, SendBatch};

/// What a vpn0 worker lends a protocol to send with: its batch of outgoing
/// datagrams, its writer to vpn0, and, when a protocol gave workers sockets of their own (the
/// native protocol's SO_REUSEPORT group), this worker's socket.
pub struct WorkerIo {
    pub tx: SendBatch,
    /// Tunnel datagrams of one size to one peer, sent as UDP GSO runs.
    pub data_tx: GsoBatch,
    pub udp: Option<RawFd>,
    /// Inner packets for vpn0, TCP flows coalesced into GSO writes; the
    /// worker writes what is left after each batch.
    pub to_tun: Coalescer,
}

/// A session that takes IP packets for its address out of vpn0.
pub trait Owner: Send + Sync {
    /// Encapsulates `ip` and sends it (or queues it in `io`). False: the
    /// packet could not be sent (counted as having no session).
    fn send_ip(&self, ip: &[u8], now: Instant, io: &mut WorkerIo) -> bool;
}

/// Who owns an address: the session's row ID, and the session.
type Route = (u64, Weak<dyn Owner>);

#[derive(Default)]
pub struct Routes {
    /// Weak: the session owns its lease, and the lease its route.
    map: RwLock<HashMap<Ipv4Addr, Route>>,
}

impl Routes {
    pub fn get(&self, dst: Ipv4Addr) -> Option<Arc<dyn Owner>> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(&dst).and_then(|(_, o)| o.upgrade())
    }

    pub(super) fn insert(&self, addr: Ipv4Addr, row_id: u64, owner: Weak<dyn Owner>) {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        m.insert(addr, (row_id, owner));
    }

    /// Removes the route if `row_id` still owns it.
    pub(super) fn remove(&self, addr: Ipv4Addr, row_id: u64) {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        if m.get(&addr).is_some_and(|(r, _)| *r == row_id) {
            m.remove(&addr);
        }
    }

    pub(super) fn remove_any(&self, addr: Ipv4Addr) {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        m.remove(&addr);
    }
}
