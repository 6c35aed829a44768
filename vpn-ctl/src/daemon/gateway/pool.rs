//! The one address allocator of the gateway: every protocol's sessions take
//! their inner address here, so no two sessions of any protocols share one.
//! A [`Lease`] holds the address (and, once set, the vpn0 route to the
//! session) until it is dropped, whatever ends the session.
use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use super::routes::{Owner, Routes};
use crate::net::prefix::Ipv4Prefix;

/// Who holds an address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holder {
    row_id: u64,
    user: String,
    protocol: &'static str,
}

/// Who is asking for an address.
pub struct Claim<'a> {
    pub user: &'a str,
    pub protocol: &'static str,
    /// The session's row ID (from [`Pool::next_row_id`]).
    pub row_id: u64,
    /// The user's static address, if the database gives one.
    pub static_ip: Option<Ipv4Addr>,
    /// The address the client had before (reconnect), if it says.
    pub want_ip: Option<Ipv4Addr>,
    /// Static addresses of every user (never handed out from the pool).
    pub reserved: &'a HashSet<Ipv4Addr>,
}

/// Why no address was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    PoolExhausted,
    TooManySessions,
    /// The user holds `max_sessions_per_user` sessions already.
    UserLimit(usize),
    /// The user's static address is not a client address of the pool.
    StaticInvalid(Ipv4Addr),
    /// The user's static address is held by another session.
    StaticHeld {
        ip: Ipv4Addr,
        protocol: &'static str,
        row_id: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PoolExhausted => f.write_str("no free address in the gateway's pool"),
            Refusal::TooManySessions => f.write_str("the gateway has reached its session limit"),
            Refusal::UserLimit(n) => write!(f, "the user has {n} sessions already (the limit)"),
            Refusal::StaticInvalid(ip) => write!(
                f,
                "the user's static address {ip} is not a client address of the pool"
            ),
            Refusal::StaticHeld {
                ip,
                protocol,
                row_id,
            } => write!(
                f,
                "the user's static address {ip} is held by {protocol} session {row_id}"
            ),
        }
    }
}

impl Refusal {
    /// What the client may be told (no other session's details).
    pub fn for_client(&self) -> String {
        match self {
            Refusal::StaticHeld { ip, .. } => {
                format!("your static address {ip} is in use by another session")
            }
            r => r.to_string(),
        }
    }
}

struct Inner {
    prefix: Ipv4Prefix,
    gateway: Ipv4Addr,
    max_sessions: usize,
    max_per_user: usize,
    /// Sessions admitted, logged in or not (`max_sessions` bounds them).
    admitted: AtomicUsize,
    held: Mutex<HashMap<Ipv4Addr, Holder>>,
    next_row: AtomicU64,
    routes: Routes,
}

/// Cheap to clone: one allocator shared by every protocol.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

/// A session's place under `max_sessions`, from its first packet (before
/// login) to its end; dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    pool: Pool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pool.0.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pool({})", self.0.prefix)
    }
}

/// An address held for one session. Dropping it frees the address and
/// removes the session's vpn0 route.
pub struct Lease {
    pool: Pool,
    addr: Ipv4Addr,
    row_id: u64,
    /// The row ID of a session of the same user and protocol whose address
    /// this lease took over (a reconnect before the old session timed out).
    pub replaced: Option<u64>,
}

impl Lease {
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// From now on, vpn0 packets for this address go to `owner` (held
    /// weakly: the owner usually holds this lease).
    pub fn route_to(&self, owner: std::sync::Weak<dyn Owner>) {
        self.pool.0.routes.insert(self.addr, self.row_id, owner);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let inner = &self.pool.0;
        inner.routes.remove(self.addr, self.row_id);
        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
        // Only our own hold: a takeover may have passed the address on.
        if held
            .get(&self.addr)
            .is_some_and(|h| h.row_id == self.row_id)
        {
            held.remove(&self.addr);
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lease({} for session {})", self.addr, self.row_id)
    }
}

impl Pool {
    pub fn new(
        prefix: Ipv4Prefix,
        gateway: Ipv4Addr,
        max_sessions: usize,
        max_per_user: usize,
    ) -> Pool {
        Pool(Arc::new(Inner {
            prefix,
            gateway,
            max_sessions,
            max_per_user,
            admitted: AtomicUsize::new(0),
            held: Mutex::default(),
            next_row: AtomicU64::new(1),
            routes: Routes::default(),
        }))
    }

    /// A place for a new session of any protocol, or `TooManySessions`.
    pub fn admit(&self) -> Result<Admission, Refusal> {
        let max = self.0.max_sessions;
        self.0
            .admitted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| Admission { pool: self.clone() })
            .map_err(|_| Refusal::TooManySessions)
    }

    /// Sessions admitted now, over all protocols.
    pub fn admitted(&self) -> usize {
        self.0.admitted.load(Ordering::Relaxed)
    }

    /// Session IDs for `sessions`/`kill`, unique across protocols.
    pub fn next_row_id(&self) -> u64 {
        self.0.next_row.fetch_add(1, Ordering::Relaxed)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.0.gateway
    }

    pub fn routes(&self) -> &Routes {
        &self.0.routes
    }

    /// Addresses held, over all protocols.
    pub fn in_use(&self) -> usize {
        self.0.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn client_addr_ok(&self, ip: Ipv4Addr) -> bool {
        let p = &self.0.prefix;
        p.contains(ip) && ip != p.network() && ip != p.broadcast() && ip != self.0.gateway
    }

    /// Restart: row IDs go on from the predecessor's.
    pub fn continue_row_ids(&self, next: u64) {
        self.0.next_row.fetch_max(next, Ordering::Relaxed);
    }

    /// Restart: a carried session's place and address, exactly as it held
    /// them (no policy runs again; the predecessor applied it). Fails only
    /// for an address that is not a client address or is held already.
    pub fn restore(
        &self,
        row_id: u64,
        user: &str,
        protocol: &'static str,
        addr: Ipv4Addr,
    ) -> anyhow::Result<(Admission, Lease)> {
        if !self.client_addr_ok(addr) {
            anyhow::bail!("{addr} is not a client address of the pool");
        }
        let mut held = self.0.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get(&addr) {
            anyhow::bail!("{addr} is held by session {} already", h.row_id);
        }
        held.insert(
            addr,
            Holder {
                row_id,
                user: user.to_string(),
                protocol,
            },
        );
        drop(held);
        self.0.admitted.fetch_add(1, Ordering::Relaxed);
        Ok((
            Admission { pool: self.clone() },
            Lease {
                pool: self.clone(),
                addr,
                row_id,
                replaced: None,
            },
        ))
    }

    /// The address for `claim`: the user's static one, else the one it
    /// wants if free (or its own), else the first free one; held for it
    /// until the lease is dropped. A session of the same user and protocol
    /// may lose its address to this claim (`Lease::replaced`).
    pub fn lease(&self, claim: &Claim<'_>) -> Result<Lease, Refusal> {
        let mut held = self.0.held.lock().unwrap_or_else(|e| e.into_inner());
        let free = |ip: Ipv4Addr| !held.contains_key(&ip);
        let own = |ip: Ipv4Addr| {
            held.get(&ip)
                .filter(|h| h.user == claim.user && h.protocol == claim.protocol)
                .map(|h| h.row_id)
        };
        let addr = if let Some(ip) = claim.static_ip {
            if !self.client_addr_ok(ip) {
                return Err(Refusal::StaticInvalid(ip));
            }
            if let Some(h) = held.get(&ip).filter(|_| own(ip).is_none()) {
                return Err(Refusal::StaticHeld {
                    ip,
                    protocol: h.protocol,
                    row_id: h.row_id,
                });
            }
            ip
        } else if let Some(ip) = claim
            .want_ip
            .filter(|ip| self.client_addr_ok(*ip) && !claim.reserved.contains(ip))
            .filter(|ip| free(*ip) || own(*ip).is_some())
        {
            ip
        } else {
            (2..)
                .map_while(|n| self.0.prefix.nth(n))
                .filter(|ip| self.client_addr_ok(*ip))
                .find(|ip| free(*ip) && !claim.reserved.contains(ip))
                .ok_or(Refusal::PoolExhausted)?
        };
        let replaced = own(addr);
        let mine = held.values().filter(|h| h.user == claim.user).count();
        if replaced.is_none() && mine >= self.0.max_per_user {
            return Err(Refusal::UserLimit(mine));
        }
        held.insert(
            addr,
            Holder {
                row_id: claim.row_id,
                user: claim.user.to_string(),
                protocol: claim.protocol,
            },
        );
        drop(held);
        if replaced.is_some() {
            self.0.routes.remove_any(addr);
        }
        Ok(Lease {
            pool: self.clone(),
            addr,
            row_id: claim.row_id,
            replaced,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize) -> Pool {
        Pool::new(
            "10.99.0.0/29".parse().unwrap(),
            "10.99.0.1".parse().unwrap(),
            max,
            3,
        )
    }

    fn claim<'a>(
        p: &Pool,
        user: &'a str,
        protocol: &'static str,
        reserved: &'a HashSet<Ipv4Addr>,
    ) -> Claim<'a> {
        Claim {
            user,
            protocol,
            row_id: p.next_row_id(),
            static_ip: None,
            want_ip: None,
            reserved,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// The collision the shared allocator exists for: a PPTP call holds X;
    /// a native login, asking for X or not, gets another address, and a
    /// static-IP user whose address is held is refused with a clear reason.
    #[test]
    fn an_address_held_by_one_protocol_is_never_given_to_another() {
        let p = pool(10);
        let none = HashSet::new();
        let bob = claim(&p, "bob", "pptp", &none);
        let pptp_row = bob.row_id;
        let pptp = p.lease(&bob).unwrap();
        let x = pptp.addr();
        assert_eq!(x, ip("10.99.0.2"));

        let plain = p.lease(&claim(&p, "alice", "native", &none)).unwrap();
        assert_ne!(plain.addr(), x);
        let wanting = p
            .lease(&Claim {
                want_ip: Some(x),
                ..claim(&p, "alice", "native", &none)
            })
            .unwrap();
        assert_ne!(wanting.addr(), x);
        // Even the same user over another protocol does not take it over.
        let same_user = p
            .lease(&Claim {
                want_ip: Some(x),
                ..claim(&p, "bob", "native", &none)
            })
            .unwrap();
        assert_ne!(same_user.addr(), x);
        assert_eq!(same_user.replaced, None);

        let refused = p
            .lease(&Claim {
                static_ip: Some(x),
                ..claim(&p, "carol", "native", &none)
            })
            .unwrap_err();
        assert_eq!(
            refused,
            Refusal::StaticHeld {
                ip: x,
                protocol: "pptp",
                row_id: pptp_row
            }
        );
        assert!(refused.to_string().contains("held by pptp session"));
        drop(pptp);
        let now_free = p
            .lease(&Claim {
                static_ip: Some(x),
                ..claim(&p, "carol", "native", &none)
            })
            .unwrap();
        assert_eq!(now_free.addr(), x);
    }

    #[test]
    fn one_user_holds_at_most_its_share_over_all_protocols() {
        let p = pool(10);
        let none = HashSet::new();
        let _a = p.lease(&claim(&p, "eve", "native", &none)).unwrap();
        let _b = p.lease(&claim(&p, "eve", "pptp", &none)).unwrap();
        let c = p.lease(&claim(&p, "eve", "l2tp", &none)).unwrap();
        let refused = p.lease(&claim(&p, "eve", "native", &none)).unwrap_err();
        assert_eq!(refused, Refusal::UserLimit(3));
        assert!(
            p.lease(&claim(&p, "bob", "native", &none)).is_ok(),
            "others unaffected"
        );
        drop(c);
        assert!(p.lease(&claim(&p, "eve", "native", &none)).is_ok());
    }

    #[test]
    fn a_reconnect_of_the_same_user_and_protocol_takes_its_address_over() {
        let p = pool(10);
        let none = HashSet::new();
        let old = p.lease(&claim(&p, "alice", "native", &none)).unwrap();
        let new = p
            .lease(&Claim {
                want_ip: Some(old.addr()),
                ..claim(&p, "alice", "native", &none)
            })
            .unwrap();
        assert_eq!(new.addr(), old.addr());
        assert_eq!(new.replaced, Some(old.row_id));
        // The old lease ending does not free what the new one holds.
        drop(old);
        assert_eq!(p.in_use(), 1);
        let other = p.lease(&claim(&p, "bob", "native", &none)).unwrap();
        assert_ne!(other.addr(), new.addr());
    }

    #[test]
    fn limits_and_reserved_addresses() {
        let p = pool(2);
        let reserved: HashSet<_> = [ip("10.99.0.2")].into();
        let a = p.lease(&claim(&p, "a", "l2tp", &reserved)).unwrap();
        assert_eq!(a.addr(), ip("10.99.0.3"), "reserved skipped");
        // Sessions count from admission (before login), over all protocols.
        let one = p.admit().unwrap();
        let two = p.admit().unwrap();
        assert_eq!(p.admit().unwrap_err(), Refusal::TooManySessions);
        drop(one);
        let _three = p.admit().unwrap();
        assert_eq!(p.admitted(), 2);
        drop(two);
        let big = Pool::new(
            "10.99.0.0/29".parse().unwrap(),
            "10.99.0.1".parse().unwrap(),
            100,
            10,
        );
        let held: Vec<_> = (0..4)
            .map(|_| big.lease(&claim(&big, "u", "pptp", &reserved)).unwrap())
            .collect();
        assert_eq!(held.len(), 4); // .3 .4 .5 .6 of a /29 (.2 reserved, .7 broadcast)
        assert_eq!(
            big.lease(&claim(&big, "u", "pptp", &reserved)).unwrap_err(),
            Refusal::PoolExhausted
        );
        for bad in ["10.99.0.1", "10.99.0.0", "10.99.0.7", "10.98.0.5"] {
            assert_eq!(
                big.lease(&Claim {
                    static_ip: Some(ip(bad)),
                    ..claim(&big, "s", "pptp", &reserved)
                })
                .unwrap_err(),
                Refusal::StaticInvalid(ip(bad))
            );
        }
    }
}
