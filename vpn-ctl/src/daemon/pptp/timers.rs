//! What PPTP calls need besides arriving packets: PPP timers (restart, LCP
//! echo) through the shared driver, and pending GRE acknowledgements.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::daemon::Shared;

/// Also the longest a fast-path call's data waits for an acknowledgement
/// when no traffic flows back to piggyback one on.
const TICK: Duration = Duration::from_millis(100);

pub async fn run(shared: Arc<Shared>) {
    let Some(pptp) = &shared.pptp else { return };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for call in pptp.all() {
            let mut s = call.lock();
            call.tick(&mut s, now);
            // Fast path: the kernel records what arrived and acknowledges it on
            // data it sends back; when nothing goes back, acknowledge here, or
            // the client's send window fills and the call stalls.
            if let (Some(f), Some(page)) = (&s.ppp.fast, &pptp.seq) {
                let seen = page.seq_in(f.index());
                if seen.is_some() && seen != s.wire.fast_acked {
                    s.wire.fast_acked = seen;
                    s.wire.ack_owed = true;
                }
            }
            if s.wire.ack_owed {
                let s = &mut *s;
                call.carrier.ack(&mut s.wire, s.ppp.fast.as_ref());
            }
        }
    }
}
