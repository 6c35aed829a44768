//! `vpn-ctl up/status/down` in the gateway namespace of the standard
//! topology, with real traffic. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::{Gateway, GatewayFiles},
    snapshot::Snapshot,
    topology::{Topology, GW_WAN},
    wait,
};

const T: Duration = Duration::from_secs(20);

fn stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(s.lines().count(), 1, "expected one error line, got:\n{s}");
    s
}

#[test]
fn up_attaches_xdp_and_counts_traffic() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let s = gw.status();
    assert_eq!(s["wan"]["name"], "wan0");
    assert_eq!(s["wan"]["xdp_mode"], "native", "veth supports native XDP");
    assert!(s["wan"]["xdp_prog_id"].as_u64().unwrap() > 0);
    assert!(s["vpn"]["tc_prog_id"].as_u64().unwrap() > 0);
    assert_eq!(s["vpn"]["name"], "vpn0");
    let listening: Vec<String> = s["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{}/{}", l["proto"].as_str().unwrap(), l["port"]))
        .collect();
    for want in ["udp/1701", "udp/500", "udp/4500", "tcp/7443", "udp/7443"] {
        assert!(
            listening.contains(&want.to_string()),
            "{want} in {listening:?}"
        );
    }
    assert!(s["maps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "VPN_ADDR_SESSIONS"));
    assert!(
        gw.files.pin_dir.join("VPN_STATS").exists(),
        "maps are pinned"
    );

    // Ordinary traffic from the internet passes through XDP to the stack.
    let rx0 = gw.count("counters", "xdp_pass_ipv4");
    t.inet.must(&format!("ping -c 3 -i 0.2 -W 2 {GW_WAN}"));
    wait::until("3 ICMP packets counted", T, || {
        (gw.count("counters", "xdp_pass_ipv4") >= rx0 + 3).then_some(())
    });

    // UDP to the L2TP port is classified and reaches the daemon's socket.
    t.inet.must(&format!(
        "for i in 1 2; do echo probe > /dev/udp/{GW_WAN}/1701; done"
    ));
    wait::until("L2TP datagrams classified", T, || {
        (gw.count("counters", "xdp_class_l2tp") >= 2).then_some(())
    });

    // NAT for the pool is installed in our own table.
    let pool = s["pool"].as_str().unwrap().to_string();
    let nat = t.gw.must("nft list table ip vpn_ctl");
    assert!(nat.contains("masquerade") && nat.contains(&pool), "{nat}");
    assert_eq!(t.gw.must("sysctl -n net.ipv4.ip_forward").trim(), "1");

    // Nothing is connected yet.
    let out = gw.ctl(&["sessions", "--json"]);
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = gw.ctl(&["kill", "42"]);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("no session 42"));
}

#[test]
fn pool_source_from_the_wan_is_dropped_and_counted() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let pool = gw.status()["pool"].as_str().unwrap().to_string();
    assert!(
        !t.ping_from_pool_address(&pool),
        "spoofed pings must not be answered"
    );
    wait::until("3 spoofed packets dropped", T, || {
        (gw.count("drops", "spoofed_pool_source") >= 3).then_some(())
    });
    // Legitimate traffic still flows.
    t.inet.must(&format!("ping -c 1 -W 2 {GW_WAN}"));
}

#[test]
fn traffic_to_an_unassigned_pool_address_goes_through_tc_to_the_daemon() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let pool = gw.status()["pool"].as_str().unwrap().to_string();
    let nobody = pool.replace(".0/24", ".77");
    let out = t.lan.sh(&format!("ping -c 2 -i 0.2 -W 1 {nobody}"));
    assert!(!out.status.success());
    wait::until("TC egress and the daemon's no-session drop", T, || {
        (gw.count("counters", "tc_to_daemon") >= 2 && gw.count("drops", "daemon_no_session") >= 2)
            .then_some(())
    });
}

#[test]
fn down_leaves_no_residue() {
    let t = Topology::build();
    let files = GatewayFiles::new(&t.gw, "");
    let before = Snapshot::take(&t.gw, &files.pin_dir);
    let mut gw = Gateway::start(&t.gw, "");
    let during = Snapshot::take(&t.gw, &gw.files.pin_dir);
    assert_ne!(before, during, "the snapshot must see what up changed");
    let st = gw.down();
    assert!(st.success(), "daemon exit: {st}\n{}", gw.log());
    let after = Snapshot::take(&t.gw, &gw.files.pin_dir);
    assert!(
        before == after,
        "residue after down:\n{}",
        before.diff(&after)
    );
    // A second down says it is not running.
    let out = gw.ctl(&["down"]);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("is not running"));
}

#[test]
fn sigterm_restores_the_host() {
    let t = Topology::build();
    let files = GatewayFiles::new(&t.gw, "");
    let before = Snapshot::take(&t.gw, &files.pin_dir);
    let mut gw = Gateway::start(&t.gw, "");
    let pin_dir = gw.files.pin_dir.clone();
    let st = gw.terminate();
    assert!(
        st.is_some_and(|s| s.success()),
        "SIGTERM: the daemon should exit 0 on its own, got {st:?}:\n{}",
        gw.log()
    );
    let after = Snapshot::take(&t.gw, &pin_dir);
    assert!(
        before == after,
        "residue after SIGTERM:\n{}",
        before.diff(&after)
    );
}

#[test]
fn a_second_up_fails_cleanly_and_the_first_keeps_running() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let out = gw.ctl(&["up"]);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("vpn-ctl is already running"));
    // The first gateway is untouched.
    let s = gw.status();
    assert_eq!(s["vpn"]["name"], "vpn0");
    t.gw.must("ip link show vpn0");
    t.gw.must("nft list table ip vpn_ctl");
}

/// SIGKILL gives the daemon no chance to clean up: what it left (nftables,
/// sysctls, pins, the journal) is undone by `vpn-ctl down`, or by the next
/// `up` before it starts, with every protocol on.
#[test]
fn after_sigkill_down_or_the_next_up_restores_the_host() {
    let t = Topology::build();
    let extra = "[pptp]\nenabled = true\n[l2tp]\nallow_plain = true\n[metrics]\nenabled = true\n";
    let files = GatewayFiles::new(&t.gw, extra);
    let pin_dir = files.pin_dir.clone();
    let config = files.config.clone();
    let before = Snapshot::take(&t.gw, &pin_dir);
    let mut gw = Gateway::start_with(&t.gw, files);
    gw.kill();
    let left = Snapshot::take(&t.gw, &pin_dir);
    assert!(
        before != left,
        "SIGKILL left nothing: the check would prove nothing"
    );
    let out = gw.ctl(&["down"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("undid"));
    let after = Snapshot::take(&t.gw, &pin_dir);
    assert!(before == after, "after down:\n{}", before.diff(&after));

    // Killed again; this time the next `up` undoes the leftovers first.
    let dir = gw.files.dir.clone();
    drop(gw);
    let files = GatewayFiles {
        dir: dir.clone(),
        config: config.clone(),
        pin_dir: pin_dir.clone(),
    };
    let mut gw = Gateway::start_with(&t.gw, files);
    gw.kill();
    let files = GatewayFiles {
        dir,
        config,
        pin_dir: pin_dir.clone(),
    };
    let mut gw = Gateway::start_with(&t.gw, files);
    assert!(gw.log().contains("undid"), "{}", gw.log());
    assert!(gw.down().success());
    let after = Snapshot::take(&t.gw, &pin_dir);
    assert!(
        before == after,
        "after up and down:\n{}",
        before.diff(&after)
    );
}
