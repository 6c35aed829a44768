//! What PPTP calls need besides arriving packets: PPP timers (restart,
//! LCP echo), pending GRE acknowledgements, and the link's events (address
//! assignment after login, up, down).
use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use vpn_proto::ppp::link::LinkEvent;

use super::{gre, gre_ack, Call, CallState};
use crate::daemon::{native::registry::Claim, native::reserved_addresses, Shared};

/// Also the longest a fast-path call's data waits for an acknowledgement
/// when no traffic flows back to piggyback one on.
const TICK: Duration = Duration::from_millis(100);

pub async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for call in shared.pptp.all() {
            let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.link.next_timeout().is_some_and(|t| now >= t) {
                s.link.handle_timeout(now);
            }
            process(&shared, &call, &mut s, now);
            // Fast path: the kernel records what arrived and acknowledges it on
            // data it sends back; when nothing goes back, acknowledge here, or
            // the client's send window fills and the call stalls.
            if let (Some(idx), Some(page)) = (s.fast, shared.pptp.seq.as_ref()) {
                let seen = page.seq_in(idx);
                if seen.is_some() && seen != s.fast_acked {
                    s.fast_acked = seen;
                    s.ack_owed = true;
                }
            }
            if s.ack_owed {
                if let Some(fd) = shared.pptp.gre_fd() {
                    let mut buf = Vec::new();
                    gre_ack(&call, &mut s, shared.pptp.seq.as_ref(), &mut buf);
                    let _ = gre::send(fd, &buf, call.peer);
                }
            }
        }
    }
}

/// Sends what the link queued and acts on its events.
pub fn process(shared: &Shared, call: &Call, s: &mut CallState, now: Instant) {
    let pptp = &shared.pptp;
    while let Some(ev) = s.link.poll_event() {
        match ev {
            LinkEvent::Authenticated { user } => {
                let (static_ip, reserved) = {
                    let db = shared.users.lock().unwrap_or_else(|e| e.into_inner());
                    let ip = db.users.iter().find(|u| u.name == user).and_then(|u| u.ip);
                    (ip, reserved_addresses(&db))
                };
                let claim = Claim {
                    user: &user,
                    static_ip,
                    want_ip: None,
                    reserved: &reserved,
                };
                match shared.native.registry.claim_external(&claim) {
                    Ok(ip) => {
                        s.addr = Some(ip);
                        s.user = Some(user.clone());
                        let gw = shared.native.registry.gateway();
                        s.link.set_addresses(now, gw, ip, pptp.dns.clone());
                        if let Some(c) = pptp.by_id(call.call_id) {
                            pptp.bind_addr(&c, ip);
                        }
                        log::info!(
                            "pptp: session {}: `{user}` logged in, address {ip}",
                            call.row_id
                        );
                    }
                    Err(reason) => {
                        log::warn!(
                            "pptp: session {}: no address for `{user}`: {}",
                            call.row_id,
                            reason.describe()
                        );
                        s.link.close(now, reason.describe());
                    }
                }
            }
            LinkEvent::AuthFailed { user } => {
                pptp.counters.login_failed.fetch_add(1, Ordering::Relaxed);
                let name: String = user
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(64)
                    .collect();
                log::warn!(
                    "pptp: login failed for user `{name}` from {}: wrong user name or password",
                    call.control_peer
                );
            }
            LinkEvent::Up { encryption } => {
                s.encryption = encryption;
                if encryption == "none" {
                    pptp.enable_fast_path(&shared.ebpf, call, s);
                }
                log::info!(
                    "pptp: session {} up: {} at {}, encryption {encryption}",
                    call.row_id,
                    s.user.as_deref().unwrap_or("-"),
                    s.addr.map(|a| a.to_string()).unwrap_or_default()
                );
            }
            LinkEvent::Down { reason } => {
                log::info!("pptp: session {} link down: {reason}", call.row_id);
                call.clear.notify_one();
            }
        }
    }
    pptp.flush_frames(call, s);
}
