//! Shared flood guards: a token bucket, and the half-open limit (total
//! and per source address) for handshakes and control connections.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Why a new half-open connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The gateway's limit.
    Total,
    /// This source address's share.
    PerAddress,
}

/// Connections still setting up: at most `total`, and at most a quarter of
/// that (at least 2) from one address, so one host cannot take every slot.
#[derive(Debug)]
pub struct HalfOpen {
    total: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One half-open connection; dropping it frees its place.
#[derive(Debug)]
pub struct HalfOpenPermit {
    limit: Arc<HalfOpen>,
    addr: IpAddr,
}

impl HalfOpen {
    pub fn new(total: usize) -> Arc<HalfOpen> {
        Arc::new(HalfOpen {
            total,
            per_address: (total / 4).max(2).min(total),
            open: Mutex::default(),
        })
    }

    pub fn try_enter(self: &Arc<Self>, addr: IpAddr) -> Result<HalfOpenPermit, Busy> {
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (n, per) = &mut *g;
        if *n >= self.total {
            return Err(Busy::Total);
        }
        let mine = per.entry(addr).or_default();
        if *mine >= self.per_address {
            return Err(Busy::PerAddress);
        }
        *mine += 1;
        *n += 1;
        Ok(HalfOpenPermit {
            limit: self.clone(),
            addr,
        })
    }
}

impl Drop for HalfOpenPermit {
    fn drop(&mut self) {
        let mut g = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        let (n, per) = &mut *g;
        *n = n.saturating_sub(1);
        if let Some(m) = per.get_mut(&self.addr) {
            *m -= 1;
            if *m == 0 {
                per.remove(&self.addr);
            }
        }
    }
}

/// Failed logins, by source address and by (user, source address), for
/// every protocol: past a few free failures each further attempt must wait,
/// doubling up to a minute. A user guessing from one address is slowed
/// without locking the same user out from elsewhere; an address guessing
/// many names is slowed too (with a higher threshold, as NAT shares
/// addresses). Attempts refused unchecked do not count as failures.
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<LoginKey, (u32, Instant)>>,
}

/// (user name, or None for the address as a whole; source address).
type LoginKey = (Option<String>, IpAddr);

/// Failures of one user from one address before backoff starts.
pub const FREE_FAILURES_USER: u32 = 5;
/// Failures from one address (any user names) before backoff starts.
pub const FREE_FAILURES_ADDRESS: u32 = 20;
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Entries kept at most (the oldest are forgotten first).
const MAX_ENTRIES: usize = 65_536;

/// The wait after `failures` (4 s once past the free ones, doubling).
fn backoff(failures: u32, free: u32) -> Option<Duration> {
    let over = failures.checked_sub(free)?;
    Some(Duration::from_secs(4 << over.min(4)).min(MAX_BACKOFF))
}

impl LoginGuard {
    fn keys(user: &str, addr: IpAddr) -> [(LoginKey, u32); 2] {
        [
            ((Some(user.to_string()), addr), FREE_FAILURES_USER),
            ((None, addr), FREE_FAILURES_ADDRESS),
        ]
    }

    /// How long this attempt must still wait, if it must.
    pub fn check(&self, user: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(user, addr)
            .iter()
            .filter_map(|(k, free)| {
                let (n, last) = f.get(k)?;
                let until = *last + backoff(*n, *free)?;
                (until > now).then(|| until - now)
            })
            .max()
    }

    pub fn failed(&self, user: &str, addr: IpAddr, now: Instant) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_ENTRIES {
            if let Some(oldest) = f
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                f.remove(&oldest);
            }
        }
        for (k, _) in Self::keys(user, addr) {
            let e = f.entry(k).or_insert((0, now));
            e.0 = e.0.saturating_add(1);
            e.1 = now;
        }
    }

    /// A good login clears that user's failures from that address.
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(&(Some(user.to_string()), addr));
    }
}

/// Warnings that unauthenticated peers can cause (failed handshakes, bad
/// control connections, refused tunnels, failed logins) share one budget,
/// so a flood cannot flood the log: a burst of `2 * UNAUTH_LOG_RATE`, then
/// `UNAUTH_LOG_RATE` per second; what is left out is counted and said with
/// the next warning that gets through.
pub const UNAUTH_LOG_RATE: u32 = 5;

static UNAUTH_LOG: std::sync::OnceLock<Mutex<(TokenBucket, u64)>> = std::sync::OnceLock::new();

/// Logs `msg()` at warn level if the budget allows (the message is only
/// built then).
pub fn warn_unauthenticated(msg: impl FnOnce() -> String) {
    let budget = UNAUTH_LOG
        .get_or_init(|| Mutex::new((TokenBucket::new(UNAUTH_LOG_RATE, Instant::now()), 0)));
    let mut g = budget.lock().unwrap_or_else(|e| e.into_inner());
    if g.0.take(Instant::now()) {
        let skipped = std::mem::take(&mut g.1);
        drop(g);
        if skipped > 0 {
            log::warn!("{} ({skipped} similar warnings left out)", msg());
        } else {
            log::warn!("{}", msg());
        }
    } else {
        g.1 += 1;
    }
}

/// After a failed `accept` (e.g. out of file descriptors): wait a little
/// instead of spinning on the error.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A token bucket: `rate` per second, bursts of twice that.
pub struct TokenBucket {
    rate: u32,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: f64::from(2 * rate),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * f64::from(self.rate);
        self.tokens = (self.tokens + refill).min(f64::from(2 * self.rate));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_address_gets_a_quarter_of_the_half_open_slots() {
        let h = HalfOpen::new(8);
        let a: IpAddr = "198.18.0.2".parse().unwrap();
        let b: IpAddr = "198.18.0.3".parse().unwrap();
        let held: Vec<_> = (0..2).map(|_| h.try_enter(a).unwrap()).collect();
        assert_eq!(h.try_enter(a).unwrap_err(), Busy::PerAddress);
        let others: Vec<_> = (0..6)
            .map(|i| h.try_enter(format!("10.0.0.{i}").parse().unwrap()).unwrap())
            .collect();
        assert_eq!(h.try_enter(b).unwrap_err(), Busy::Total);
        drop(held);
        assert!(h.try_enter(a).is_ok(), "freed on drop");
        drop(others);
    }

    #[test]
    fn failed_logins_back_off_per_user_and_address() {
        let g = LoginGuard::default();
        let t0 = Instant::now();
        let a: IpAddr = "198.18.0.2".parse().unwrap();
        let b: IpAddr = "198.18.0.3".parse().unwrap();
        for _ in 0..FREE_FAILURES_USER {
            assert_eq!(g.check("alice", a, t0), None);
            g.failed("alice", a, t0);
        }
        assert_eq!(g.check("alice", a, t0), Some(Duration::from_secs(4)));
        assert_eq!(
            g.check("alice", b, t0),
            None,
            "alice from elsewhere is not locked out"
        );
        assert_eq!(
            g.check("bob", a, t0),
            None,
            "another name from a: below its threshold"
        );
        assert_eq!(
            g.check("alice", a, t0 + Duration::from_secs(4)),
            None,
            "waited"
        );
        for _ in 0..20 {
            g.failed("alice", a, t0);
        }
        assert_eq!(g.check("alice", a, t0), Some(MAX_BACKOFF), "capped");
        assert!(
            g.check("carol", a, t0).is_some(),
            "the address is slowed for every name"
        );
        g.succeeded("alice", b);
        assert_eq!(g.check("alice", b, t0), None);
    }

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 20);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 5);
    }
}
