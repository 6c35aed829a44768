//! The gateway's native sessions: by wire session ID (datagrams in) and by
//! row ID (`sessions`, `kill`). Addresses come from the gateway's one pool;
//! each session holds its lease, so its address and vpn0 route go with it.
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use vpn_proto::native::{
    crypto::Cipher,
    messages::Reason,
    session::{Discard, Session},
};

use crate::{
    daemon::{
        gateway::{
            pool::{Admission, Claim, Lease, Pool, Refusal},
            routes::{Owner, WorkerIo},
        },
        radius::accounting::FinalRows,
    },
    report::SessionRow,
};

pub struct NativeSession {
    pub row_id: u64,
    pub wire_id: u32,
    pub user: String,
    pub addr: Ipv4Addr,
    pub cipher: Cipher,
    /// Unix seconds.
    pub started_at: u64,
    pub engine: Mutex<Session>,
    /// The address (and vpn0 route), released when the session is dropped.
    pub lease: Lease,
    /// Its place under `max_sessions`.
    _admission: Admission,
}

impl Owner for NativeSession {
    /// Encrypts a vpn0 packet into the worker's batch for this client.
    fn send_ip(&self, ip: &[u8], now: Instant, io: &mut WorkerIo) -> bool {
        let Some(udp) = io.udp else { return false };
        let mut e = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        // Handshaken, but no datagram from the client yet: nowhere to send.
        let Some(peer) = e.peer() else { return false };
        io.data_tx
            .push_with(udp, peer, |out| e.seal_ip(now, ip, out).is_ok());
        true
    }
}

impl NativeSession {
    /// Its row in `sessions`.
    pub fn row(&self) -> SessionRow {
        let e = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        SessionRow {
            id: self.row_id,
            protocol: "native".into(),
            user: self.user.clone(),
            peer: e.peer().map_or_else(|| "-".into(), |p| p.to_string()),
            assigned_ip: self.addr.to_string(),
            state: if e.peer().is_some() {
                "up"
            } else {
                "handshaken"
            }
            .into(),
            started_at: self.started_at,
            rx_bytes: e.stats.rx_bytes,
            rx_packets: e.stats.rx_packets,
            tx_bytes: e.stats.tx_bytes,
            tx_packets: e.stats.tx_packets,
            fast_path: false,
            fast_path_rx_packets: 0,
            fast_path_tx_packets: 0,
            encryption: self.cipher.name().into(),
            drops: e.stats.drops.iter().sum(),
        }
    }
}

pub struct Registry {
    by_wire: RwLock<HashMap<u32, Arc<NativeSession>>>,
    /// With RADIUS accounting: removed sessions' last rows.
    finals: Option<Arc<FinalRows>>,
    pool: Pool,
    /// Datagrams dropped, by reason, over all sessions (and before a session is known).
    drops: [AtomicU64; Discard::COUNT],
}

/// What `admit` did.
pub struct Admitted<T> {
    pub session: Arc<NativeSession>,
    pub extra: T,
    /// The row ID of an older session of the same user that held the
    /// address (now removed).
    pub replaced: Option<u64>,
}

/// The native protocol's word for a refusal.
pub fn reason(r: &Refusal) -> Reason {
    match r {
        Refusal::PoolExhausted => Reason::PoolExhausted,
        Refusal::TooManySessions | Refusal::UserLimit(_) => Reason::TooManySessions,
        Refusal::StaticInvalid(_) | Refusal::StaticHeld { .. } => Reason::ServerError,
    }
}

impl Registry {
    pub fn new(pool: Pool, finals: Option<Arc<FinalRows>>) -> Registry {
        Registry {
            by_wire: RwLock::default(),
            finals,
            pool,
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, Arc<NativeSession>>> {
        self.by_wire.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, Arc<NativeSession>>> {
        self.by_wire.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn by_wire(&self, id: u32) -> Option<Arc<NativeSession>> {
        self.read().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<NativeSession>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by_key(|s| s.row_id);
        v
    }

    pub fn len(&self) -> usize {
        self.read().len()
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
        let wire = m.values().find(|s| s.row_id == row_id)?.wire_id;
        let s = m.remove(&wire)?;
        drop(m);
        if let Some(f) = &self.finals {
            f.record(s.row());
        }
        Some(s)
    }

    /// Restart: the sessions' state for the successor (sessions closing
    /// already are left out).
    pub fn carry(&self, now: Instant) -> Vec<crate::daemon::handoff::NativeCarry> {
        self.all()
            .iter()
            .filter_map(|s| {
                let e = s.engine.lock().unwrap_or_else(|e| e.into_inner());
                Some(crate::daemon::handoff::NativeCarry {
                    row_id: s.row_id,
                    wire_id: s.wire_id,
                    user: s.user.clone(),
                    addr: s.addr,
                    started_at: s.started_at,
                    engine: e.carry(now)?,
                })
            })
            .collect()
    }

    /// Restart: a carried session, with its address, row and wire IDs.
    pub fn restore(
        &self,
        c: &crate::daemon::handoff::NativeCarry,
        psk: zeroize::Zeroizing<[u8; 32]>,
        params: vpn_proto::native::session::Params,
        now: Instant,
    ) -> anyhow::Result<()> {
        let engine = Session::resume(&c.engine, psk, params, now)?;
        let (admission, lease) = self.pool.restore(c.row_id, &c.user, "native", c.addr)?;
        let session = Arc::new(NativeSession {
            row_id: c.row_id,
            wire_id: c.wire_id,
            user: c.user.clone(),
            addr: c.addr,
            cipher: engine.cipher(),
            started_at: c.started_at,
            engine: Mutex::new(engine),
            lease,
            _admission: admission,
        });
        let owner: Arc<dyn Owner> = session.clone();
        session.lease.route_to(Arc::downgrade(&owner));
        self.write().insert(c.wire_id, session);
        Ok(())
    }

    /// Leases an address for `claim` from the gateway's pool and inserts the
    /// session `build` makes for it (address, wire ID, row ID).
    pub fn admit<T>(
        &self,
        claim: &Claim<'_>,
        build: impl FnOnce(Ipv4Addr, u32, u64) -> (Session, Cipher, T),
    ) -> Result<Admitted<T>, Refusal> {
        let lease = self.pool.lease(claim)?;
        // The session this login replaces frees its place first.
        let replaced = lease
            .replaced
            .and_then(|row| self.remove(row))
            .map(|old| old.row_id);
        let admission = self.pool.admit()?;
        let addr = lease.addr();
        let mut m = self.write();
        let wire_id = loop {
            let id: u32 = rand::random();
            if id != 0 && !m.contains_key(&id) {
                break id;
            }
        };
        let (engine, cipher, extra) = build(addr, wire_id, claim.row_id);
        let session = Arc::new(NativeSession {
            row_id: claim.row_id,
            wire_id,
            user: claim.user.to_string(),
            addr,
            cipher,
            started_at: crate::daemon::unix_now(),
            engine: Mutex::new(engine),
            lease,
            _admission: admission,
        });
        let owner: Arc<dyn Owner> = session.clone();
        session.lease.route_to(Arc::downgrade(&owner));
        m.insert(wire_id, session.clone());
        Ok(Admitted {
            session,
            extra,
            replaced,
        })
    }
}
