//! Session timers: every tick, each session's engine runs its deadlines
//! (dead-peer expiry on the gateway), what it queued is sent, and its events
//! are acted on (expired or closed sessions are removed, moves are logged).
use std::{sync::Arc, time::Duration, time::Instant};

use vpn_proto::native::{messages::Reason, session::Event};

use crate::{daemon::Shared, net::batch};

const TICK: Duration = Duration::from_millis(250);

pub async fn run(shared: Arc<Shared>) {
    let native = &shared.native;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for s in native.registry.all() {
            let mut ended = None;
            {
                let mut e = s.engine.lock().unwrap_or_else(|e| e.into_inner());
                if now >= e.poll_timeout() {
                    e.handle_timeout(now);
                }
                if let (Some(peer), Some(fd)) = (e.peer(), native.control_fd()) {
                    while let Some(d) = e.poll_transmit() {
                        let _ = batch::send_to(fd, &d, peer);
                    }
                }
                while let Some(ev) = e.poll() {
                    match ev {
                        Event::PeerMoved(to) => {
                            log::info!("native: session {} ({}) moved to {to}", s.row_id, s.user)
                        }
                        Event::Rekeyed(k) => {
                            log::debug!("native: session {} rekeyed (key {k})", s.row_id)
                        }
                        Event::PeerDead => {
                            ended = Some((Reason::Expired, String::new(), traffic(&e)))
                        }
                        Event::Closed(r, m) => ended = Some((r, m, traffic(&e))),
                    }
                }
            }
            if let Some((reason, msg, traffic)) = ended {
                if native.registry.remove(s.row_id).is_some() {
                    let why = match reason {
                        Reason::Expired if !msg.is_empty() => format!("expired: {msg}"),
                        Reason::Expired => format!(
                            "expired: nothing from the client for {} keepalive intervals",
                            vpn_proto::native::consts::DEAD_AFTER_KEEPALIVES
                        ),
                        r => format!("the client said: {}", r.describe()),
                    };
                    log::info!(
                        "native: session {} ({}, {}) ended, {why}; {traffic}",
                        s.row_id,
                        s.user,
                        s.addr
                    );
                }
            }
        }
    }
}

fn traffic(e: &vpn_proto::native::session::Session) -> String {
    crate::report::human::traffic(e.stats.rx_bytes, e.stats.tx_bytes)
}
