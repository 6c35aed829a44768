//! Keeps XDP forwarding honest (decisions #54): on only while no
//! netfilter rule it would bypass exists, re-checked every few seconds, so
//! an operator's new FORWARD rule takes effect (by falling back to the TC
//! path) without a restart. `status` says which it is and why.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aya::Ebpf;

use super::Shared;
use crate::{dataplane::forward, net::bypass, report::XdpForwardStatus};

/// How often the ruleset is read again.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

pub struct XdpForward {
    pub interfaces: Vec<String>,
    /// Why XDP forwarding is off now; empty: it is on.
    blocked_by: Mutex<Vec<String>>,
    /// Whether the route cache is on (`route_watch`).
    pub route_cache: AtomicBool,
}

impl XdpForward {
    pub fn new(interfaces: Vec<String>) -> XdpForward {
        XdpForward {
            interfaces,
            blocked_by: Mutex::new(Vec::new()),
            route_cache: AtomicBool::new(false),
        }
    }

    /// Reads the ruleset and turns XDP forwarding on or off to match.
    pub fn check(&self, ebpf: &Mutex<Ebpf>) -> anyhow::Result<()> {
        let blocked = match bypass::find() {
            Ok(chains) => chains,
            Err(e) => vec![format!("the netfilter ruleset could not be read ({e})")],
        };
        let on = blocked.is_empty();
        let changed = {
            let mut ebpf = ebpf.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            forward::set_enabled(&mut ebpf, on)?
        };
        let mut was = self.blocked_by.lock().unwrap_or_else(|e| e.into_inner());
        if changed || *was != blocked {
            if on {
                log::info!(
                    "XDP forwarding on between the WAN and {}",
                    self.interfaces.join(", ")
                );
            } else {
                log::warn!(
                    "XDP forwarding off (the TC path carries the fast paths): it would bypass {}",
                    blocked.join("; ")
                );
            }
        }
        *was = blocked;
        Ok(())
    }

    pub fn status(&self) -> XdpForwardStatus {
        let blocked = self
            .blocked_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        XdpForwardStatus {
            interfaces: self.interfaces.clone(),
            active: blocked.is_empty(),
            bypassed: blocked,
            route_cache: self.route_cache.load(Ordering::Relaxed),
        }
    }
}

/// Re-checks the ruleset until the daemon stops (and aborts the task).
pub async fn run(shared: Arc<Shared>, fwd: Arc<XdpForward>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let (s, f) = (shared.clone(), fwd.clone());
        match tokio::task::spawn_blocking(move || f.check(&s.ebpf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("XDP forwarding check: {e:#}"),
            Err(e) => log::warn!("XDP forwarding check: {e}"),
        }
    }
}
