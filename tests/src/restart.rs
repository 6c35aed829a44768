//! `vpn-ctl restart` while pings run through a session: the helpers the
//! restart test and the real clients' rows share.
use std::time::Duration;

use crate::{gateway::Gateway, guest::Guest, wait};

/// Pings a restart may lose (the data path pauses while the successor
/// starts; queued packets wait in the sockets).
pub const MAX_LOST: u64 = 5;

/// (transmitted, received) from ping's summary line.
pub fn ping_counts(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    let num = |i: usize| -> u64 {
        line.split(", ")
            .nth(i)
            .and_then(|p| p.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counts in: {line}"))
    };
    (num(0), num(1))
}

fn rx_total(gw: &Gateway) -> u64 {
    gw.sessions()
        .iter()
        .map(|r| r["rx_packets"].as_u64().unwrap_or(0))
        .sum()
}

/// In guest `g`, 40 pings to `target` 200 ms apart with `vpn-ctl restart`
/// in the middle of them; asserts that the restart carried every session
/// and lost at most [`MAX_LOST`] pings. Returns ping's output.
pub fn ping_across_restart(gw: &Gateway, g: &mut Guest, target: &str) -> String {
    let t = Duration::from_secs(60);
    let sessions = gw.sessions().len();
    let rx0 = rx_total(gw);
    g.must(
        &format!(
            "setsid ping -c 40 -i 0.2 -W 2 {target} > /tmp/restart-ping.out 2>&1 < /dev/null &"
        ),
        t,
    );
    wait::until("pings through the session", t, || {
        (rx_total(gw) >= rx0 + 3).then_some(())
    });
    let said = gw.restart_in_place();
    assert!(
        said.contains(&format!("{sessions} of {sessions} sessions carried over")),
        "{said}"
    );
    let out = g.must(
        "while pgrep -x ping >/dev/null; do sleep 0.2; done; cat /tmp/restart-ping.out",
        t,
    );
    let (sent, got) = ping_counts(&out);
    assert!(
        sent - got <= MAX_LOST,
        "lost {} of {sent} pings across the restart:\n{out}\n{}",
        sent - got,
        gw.log()
    );
    out
}
