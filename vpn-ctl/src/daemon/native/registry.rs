//! The gateway's native sessions: by wire session ID (datagrams in), by
//! assigned address (packets out of vpn0) and by row ID (`sessions`, `kill`),
//! plus address assignment from the pool.
use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

use vpn_proto::native::{
    crypto::Cipher,
    messages::Reason,
    session::{Discard, Session},
};

use crate::net::prefix::Ipv4Prefix;

pub struct NativeSession {
    pub row_id: u64,
    pub wire_id: u32,
    pub user: String,
    pub addr: Ipv4Addr,
    pub cipher: Cipher,
    /// Unix seconds.
    pub started_at: u64,
    pub engine: Mutex<Session>,
}

#[derive(Default)]
struct Maps {
    by_wire: HashMap<u32, Arc<NativeSession>>,
    by_addr: HashMap<Ipv4Addr, Arc<NativeSession>>,
    /// Addresses held by sessions of other protocols (PPTP).
    external: HashSet<Ipv4Addr>,
}

/// A native session of the same user holding `ip` (a reconnect whose old
/// session has not timed out yet may take it over).
fn own(m: &Maps, claim: &Claim<'_>, ip: Ipv4Addr) -> Option<Arc<NativeSession>> {
    m.by_addr.get(&ip).filter(|s| s.user == claim.user).cloned()
}

pub struct Registry {
    maps: RwLock<Maps>,
    next_row: AtomicU64,
    pool: Ipv4Prefix,
    gateway: Ipv4Addr,
    max_sessions: usize,
    /// Datagrams dropped, by reason, over all sessions (and before a session is known).
    drops: [AtomicU64; Discard::COUNT],
}

/// Who is asking for an address.
pub struct Claim<'a> {
    pub user: &'a str,
    /// The user's static address, if the database gives one.
    pub static_ip: Option<Ipv4Addr>,
    /// The address the client had before (reconnect).
    pub want_ip: Option<Ipv4Addr>,
    /// Static addresses of every user (never handed out from the pool).
    pub reserved: &'a HashSet<Ipv4Addr>,
}

/// What `admit` did.
pub struct Admitted<T> {
    pub session: Arc<NativeSession>,
    pub extra: T,
    /// An older session of the same user that held the address (now removed).
    pub replaced: Option<Arc<NativeSession>>,
}

impl Registry {
    pub fn new(pool: Ipv4Prefix, gateway: Ipv4Addr, max_sessions: usize) -> Registry {
        Registry {
            maps: RwLock::default(),
            next_row: AtomicU64::new(1),
            pool,
            gateway,
            max_sessions,
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn by_wire(&self, id: u32) -> Option<Arc<NativeSession>> {
        self.read().by_wire.get(&id).cloned()
    }

    pub fn by_addr(&self, ip: Ipv4Addr) -> Option<Arc<NativeSession>> {
        self.read().by_addr.get(&ip).cloned()
    }

    pub fn all(&self) -> Vec<Arc<NativeSession>> {
        let mut v: Vec<_> = self.read().by_wire.values().cloned().collect();
        v.sort_by_key(|s| s.row_id);
        v
    }

    pub fn len(&self) -> usize {
        self.read().by_wire.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn count_drop(&self, d: Discard) {
        self.drops[d as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        Discard::ALL
            .iter()
            .map(|d| (d.name(), self.drops[*d as usize].load(Ordering::Relaxed)))
            .collect()
    }

    pub fn remove(&self, row_id: u64) -> Option<Arc<NativeSession>> {
        let mut m = self.write();
        let s = m.by_wire.values().find(|s| s.row_id == row_id)?.clone();
        m.by_wire.remove(&s.wire_id);
        m.by_addr.remove(&s.addr);
        Some(s)
    }

    /// The address for `claim`: the user's static one, else the one it
    /// wants if free (or its own), else the first free one.
    fn pick(&self, m: &Maps, claim: &Claim<'_>) -> Result<Ipv4Addr, Reason> {
        let free = |ip: Ipv4Addr| !m.by_addr.contains_key(&ip) && !m.external.contains(&ip);
        if let Some(ip) = claim.static_ip {
            if !self.client_addr_ok(ip) || !(free(ip) || own(m, claim, ip).is_some()) {
                return Err(Reason::ServerError);
            }
            return Ok(ip);
        }
        if let Some(ip) = claim
            .want_ip
            .filter(|ip| self.client_addr_ok(*ip) && !claim.reserved.contains(ip))
            .filter(|ip| free(*ip) || own(m, claim, *ip).is_some())
        {
            return Ok(ip);
        }
        (2..)
            .map_while(|n| self.pool.nth(n))
            .filter(|ip| self.client_addr_ok(*ip))
            .find(|ip| free(*ip) && !claim.reserved.contains(ip))
            .ok_or(Reason::PoolExhausted)
    }

    /// An address for a session of another protocol (PPTP); kept until released.
    pub fn claim_external(&self, claim: &Claim<'_>) -> Result<Ipv4Addr, Reason> {
        let mut m = self.write();
        let ip = self.pick(&m, claim)?;
        if m.by_addr.contains_key(&ip) || m.external.contains(&ip) {
            return Err(Reason::ServerError); // a static address already in use
        }
        m.external.insert(ip);
        Ok(ip)
    }

    pub fn release_external(&self, ip: Ipv4Addr) {
        self.write().external.remove(&ip);
    }

    /// Session IDs for `sessions`/`kill`, unique across protocols.
    pub fn next_row_id(&self) -> u64 {
        self.next_row.fetch_add(1, Ordering::Relaxed)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    fn client_addr_ok(&self, ip: Ipv4Addr) -> bool {
        self.pool.contains(ip)
            && ip != self.pool.network()
            && ip != self.pool.broadcast()
            && ip != self.gateway
    }

    /// Picks an address for `claim` and inserts the session `build` makes
    /// for it (address, wire ID, row ID), all under one lock.
    pub fn admit<T>(
        &self,
        claim: &Claim<'_>,
        build: impl FnOnce(Ipv4Addr, u32, u64) -> (Session, Cipher, T),
    ) -> Result<Admitted<T>, Reason> {
        let mut m = self.write();
        // The same user may take over its own address (a reconnect whose old
        // session has not timed out yet).
        let own =
            |m: &Maps, ip: Ipv4Addr| m.by_addr.get(&ip).filter(|s| s.user == claim.user).cloned();
        let free = |m: &Maps, ip: Ipv4Addr| !m.by_addr.contains_key(&ip);
        let addr = if let Some(ip) = claim.static_ip {
            if !self.client_addr_ok(ip) || !(free(&m, ip) || own(&m, ip).is_some()) {
                return Err(Reason::ServerError);
            }
            ip
        } else if let Some(ip) = claim
            .want_ip
            .filter(|ip| self.client_addr_ok(*ip) && !claim.reserved.contains(ip))
            .filter(|ip| free(&m, *ip) || own(&m, *ip).is_some())
        {
            ip
        } else {
            (2..)
                .map_while(|n| self.pool.nth(n))
                .filter(|ip| self.client_addr_ok(*ip))
                .find(|ip| free(&m, *ip) && !claim.reserved.contains(ip))
                .ok_or(Reason::PoolExhausted)?
        };
        let replaced = own(&m, addr);
        if let Some(old) = &replaced {
            m.by_wire.remove(&old.wire_id);
            m.by_addr.remove(&old.addr);
        }
        if m.by_wire.len() >= self.max_sessions {
            return Err(Reason::TooManySessions);
        }
        let wire_id = loop {
            let id: u32 = rand::random();
            if id != 0 && !m.by_wire.contains_key(&id) {
                break id;
            }
        };
        let row_id = self.next_row.fetch_add(1, Ordering::Relaxed);
        let (engine, cipher, extra) = build(addr, wire_id, row_id);
        let session = Arc::new(NativeSession {
            row_id,
            wire_id,
            user: claim.user.to_string(),
            addr,
            cipher,
            started_at: crate::daemon::unix_now(),
            engine: Mutex::new(engine),
        });
        m.by_wire.insert(wire_id, session.clone());
        m.by_addr.insert(addr, session.clone());
        Ok(Admitted {
            session,
            extra,
            replaced,
        })
    }
}
