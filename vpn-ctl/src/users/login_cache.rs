//! Remembers recent good native logins so a reconnect or a roaming client
//! does not pay argon2id again: per user, a keyed hash (HMAC-SHA256 under a
//! key made at start, in memory only) of the password that matched, and the
//! verifier it matched. A changed password changes the verifier, which
//! voids the entry; a wrong password misses and goes to argon2id, so the
//! cache never makes a guess cheaper.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ring::hmac;

/// How long a good login is remembered.
pub const TTL: Duration = Duration::from_secs(15 * 60);
/// At most this many users are remembered (oldest entries go first).
const CAPACITY: usize = 4096;

struct Entry {
    verifier: String,
    tag: hmac::Tag,
    at: Instant,
}

pub struct LoginCache {
    key: hmac::Key,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for LoginCache {
    fn default() -> Self {
        let rng = ring::rand::SystemRandom::new();
        LoginCache {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system RNG"),
            entries: Mutex::default(),
        }
    }
}

impl LoginCache {
    /// Whether `password` is the one that last logged `user` in against
    /// this `verifier`, within `TTL` of `now`.
    pub fn hit(&self, user: &str, verifier: &str, password: &str, now: Instant) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(user).is_some_and(|e| {
            e.verifier == verifier
                && now.duration_since(e.at) < TTL
                && hmac::verify(&self.key, password.as_bytes(), e.tag.as_ref()).is_ok()
        })
    }

    /// Records a login argon2id accepted.
    pub fn remember(&self, user: &str, verifier: &str, password: &str, now: Instant) {
        let tag = hmac::sign(&self.key, password.as_bytes());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(user) {
            entries.retain(|_, e| now.duration_since(e.at) < TTL);
            if entries.len() >= CAPACITY {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            user.to_string(),
            Entry {
                verifier: verifier.to_string(),
                tag,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_password_and_verifier_within_the_ttl_hit() {
        let c = LoginCache::default();
        let t0 = Instant::now();
        assert!(!c.hit("alice", "$v1", "pw-1", t0));
        c.remember("alice", "$v1", "pw-1", t0);
        assert!(c.hit("alice", "$v1", "pw-1", t0 + Duration::from_secs(1)));
        assert!(!c.hit("alice", "$v1", "pw-2", t0));
        assert!(
            !c.hit("alice", "$v2", "pw-1", t0),
            "a new verifier voids it"
        );
        assert!(!c.hit("bob", "$v1", "pw-1", t0));
        assert!(!c.hit("alice", "$v1", "pw-1", t0 + TTL));
    }

    #[test]
    fn capacity_is_bounded() {
        let c = LoginCache::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY + 10 {
            c.remember(
                &format!("u{i}"),
                "$v",
                "pw",
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(c.entries.lock().unwrap().len(), CAPACITY);
        assert!(!c.hit("u0", "$v", "pw", t0 + Duration::from_secs(1)));
        assert!(c.hit(
            &format!("u{}", CAPACITY + 9),
            "$v",
            "pw",
            t0 + Duration::from_secs(1)
        ));
    }
}
