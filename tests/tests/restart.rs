//! `vpn-ctl restart` (docs/decisions.md #52): the daemon execs a new image
//! of itself and hands over its sessions; pings running through them lose
//! at most a handful of packets, and no client reconnects. Needs root.
use std::process::Stdio;

use vpn_tests::{
    gateway::Gateway,
    native_client::{add_user, gateway_creds, Client},
    topology::{Topology, LAN_HOST},
    wait,
};

/// Packets a ping across the restart may lose (the programs are detached
/// while the successor loads them; everything else queues in sockets).
const MAX_LOST: u64 = 5;
const PINGS: u64 = 100;

/// (transmitted, received) from ping's summary.
fn ping_counts(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    let num = |i: usize| -> u64 {
        line.split(", ")
            .nth(i)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num(0), num(1))
}

fn row<'a>(rows: &'a [serde_json::Value], protocol: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {protocol} session in {rows:?}"))
}

#[test]
fn sessions_keep_passing_traffic_across_a_restart() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[native]\nkeepalive_secs = 2\n");
    add_user(&gw, "alice", "alice-password-1", None);
    let mut native = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    let addr = native.wait_connected();
    let before = gw.sessions();
    let pid = gw.pid();

    // Pings through the session, the restart in the middle of them.
    let ping =
        t.c1.cmd("ping")
            .args(["-c", &PINGS.to_string(), "-i", "0.1", "-W", "2", LAN_HOST])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    wait::until("pings to flow", std::time::Duration::from_secs(10), || {
        let rows = gw.sessions();
        (row(&rows, "native")["rx_packets"].as_u64().unwrap()
            > row(&before, "native")["rx_packets"].as_u64().unwrap() + 5)
            .then_some(())
    });
    let said = gw.restart_in_place();
    assert!(said.contains("1 of 1 sessions carried over"), "{said}");
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (sent, got) = ping_counts(&text);
    assert!(
        sent - got <= MAX_LOST,
        "lost {} of {sent}:\n{text}\n{}",
        sent - got,
        gw.log()
    );

    // The same process, restarted once, with the same sessions.
    let st = gw.status();
    assert_eq!(st["pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(st["restarts"].as_u64(), Some(1));
    let after = gw.sessions();
    let (b, a) = (row(&before, "native"), row(&after, "native"));
    assert_eq!(
        (a["id"].clone(), a["assigned_ip"].clone()),
        (b["id"].clone(), b["assigned_ip"].clone())
    );
    assert_eq!(a["assigned_ip"], addr.as_str());
    assert!(a["rx_packets"].as_u64() > b["rx_packets"].as_u64());
    // The client never noticed: one connection, no reconnect.
    assert_eq!(
        native.stdout().matches("connected to").count(),
        1,
        "{}",
        native.stdout()
    );
    assert!(gw.log().contains("1 sessions carried over"), "{}", gw.log());

    // The successor undoes what its predecessor set up.
    let mut gw = gw;
    native.kill();
    assert!(gw.down().success(), "{}", gw.log());
    let wan = String::from_utf8_lossy(&t.gw.sh("ip -d link show wan0").stdout).into_owned();
    assert!(!wan.contains("xdp"), "XDP still attached: {wan}");
    assert!(!t.gw.sh("ip link show vpn0").status.success());
    assert!(!gw.files.pin_dir.exists(), "pins left behind");
}
