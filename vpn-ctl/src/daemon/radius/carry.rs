//! RADIUS accounting over a restart (docs/decisions.md #52): the servers
//! must not hear of one. The successor keeps the Acct-Session-Id prefix
//! (`boot`), sends no Accounting-On (which would close every session of
//! this NAS), and goes on tracking the carried sessions with their grants,
//! their ages (Session-Timeout, Idle-Timeout) and their interim schedule.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vpn_proto::radius::{consts::cause, login::Grant};

use super::{
    accounting::{lock, peer_ip, Tracked},
    Radius,
};
use crate::daemon::Shared;

#[derive(Serialize, Deserialize)]
pub struct TrackedCarry {
    pub row_id: u64,
    pub grant: Grant,
    pub since_ms: u64,
    pub active_ms: u64,
    pub interim_secs: Option<u64>,
    pub next_interim_ms: Option<u64>,
    /// Its last row: a session that does not come through gets its Stop
    /// with these counters.
    pub last: crate::report::SessionRow,
}

#[derive(Serialize, Deserialize)]
pub struct RadiusCarry {
    pub boot: u64,
    pub tracked: Vec<TrackedCarry>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Radius {
    pub fn carry(&self) -> RadiusCarry {
        let now = Instant::now();
        let tracked = lock(&self.sessions.tracked)
            .iter()
            .map(|(id, t)| TrackedCarry {
                row_id: *id,
                grant: t.grant.clone(),
                since_ms: ms(now.saturating_duration_since(t.since)),
                active_ms: ms(now.saturating_duration_since(t.active_at)),
                interim_secs: t.interim.map(|d| d.as_secs()),
                next_interim_ms: t.next_interim.map(|n| ms(n.saturating_duration_since(now))),
                last: t.last.clone(),
            })
            .collect();
        RadiusCarry {
            boot: self.boot,
            tracked,
        }
    }

    /// The successor: the carried sessions are tracked as they were (no
    /// second Start); sessions that did not come through get their Stop
    /// (Admin-Reboot) at the next step.
    pub fn resume(&self, shared: &Shared, c: &RadiusCarry) {
        let now = Instant::now();
        let back = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
        let rows = shared.sessions();
        let mut tracked = lock(&self.sessions.tracked);
        for t in &c.tracked {
            let row = match rows.iter().find(|r| r.id == t.row_id) {
                Some(r) => r,
                None => {
                    self.sessions.ended_by(t.row_id, cause::ADMIN_REBOOT);
                    &t.last
                }
            };
            let info = self.session_info(
                &row.user,
                peer_ip(&row.peer),
                row.id,
                row.protocol != "native",
            );
            tracked.insert(
                t.row_id,
                Tracked {
                    info,
                    framed_ip: row.assigned_ip.parse().ok(),
                    grant: t.grant.clone(),
                    last: row.clone(),
                    since: back(t.since_ms),
                    interim: t.interim_secs.map(Duration::from_secs),
                    next_interim: t.next_interim_ms.map(|m| now + Duration::from_millis(m)),
                    active_at: back(t.active_ms),
                },
            );
        }
    }
}
