//! The native protocol end to end: `vpn-ctl up` in the gateway namespace,
//! `vpn-ctl connect` clients on the internet and behind the NAT box, real
//! traffic. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    native_client::{add_user, gateway_psk, Client},
    topology::{Topology, INET, LAN_HOST},
    wait,
};

const T: Duration = Duration::from_secs(20);

fn ping(ns: &vpn_tests::netns::Netns, dst: &str) -> bool {
    ns.sh(&format!("ping -c 1 -W 2 {dst}")).status.success()
}

fn sessions(gw: &Gateway) -> Vec<serde_json::Value> {
    let out = gw.ctl(&["sessions", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn two_clients_reach_each_other_the_lan_and_the_internet() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\ndns = [\"172.16.10.2\"]");
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-22", None);
    let psk = gateway_psk(&gw);

    let mut a = Client::start(&t.c1, "alice", "alice-password-1", &psk, &["--full-tunnel"]);
    let mut b = Client::start(&t.c2, "bob", "bob-password-22", &psk, &[]);
    let a_ip = a.wait_connected();
    let b_ip = b.wait_connected();
    assert_ne!(a_ip, b_ip);
    let b_line = b.wait_line("connected to", 1, T);
    assert!(b_line.contains("routes [172.16.10.0/24]"), "pushed LAN route: {b_line}");
    assert!(b_line.contains("aes-256-gcm"), "{b_line}");
    assert!(b.resolv_conf().contains("nameserver 172.16.10.2"), "{}", b.resolv_conf());

    // LAN, each other, and (A is full-tunnel) the internet through the gateway's NAT.
    wait::until("alice reaches the LAN host", T, || ping(&t.c1, LAN_HOST).then_some(()));
    wait::until("bob reaches the LAN host", T, || ping(&t.c2, LAN_HOST).then_some(()));
    wait::until("bob reaches alice", T, || ping(&t.c2, &a_ip).then_some(()));
    wait::until("alice reaches bob", T, || ping(&t.c1, &b_ip).then_some(()));
    let route = t.c1.must(&format!("ip -4 route get {INET}"));
    assert!(route.contains("dev vpnc0"), "full tunnel: {route}");
    let seen = t.inet.sh(&format!(
        "timeout 10 python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); print(s.recvfrom(100)[1][0])\" & sleep 0.5; \
         {} bash -c 'echo hi > /dev/udp/{INET}/9999'; wait",
        t.c1.enter()
    ));
    let seen = String::from_utf8_lossy(&seen.stdout).trim().to_string();
    assert_eq!(seen, vpn_tests::topology::GW_WAN, "the internet host sees the gateway's NAT address");

    let rows = sessions(&gw);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["protocol"], "native");
        assert_eq!(r["encryption"], "aes-256-gcm");
        assert_eq!(r["state"], "up");
        assert!(r["rx_packets"].as_u64().unwrap() > 0 && r["tx_packets"].as_u64().unwrap() > 0);
    }
    let alice = rows.iter().find(|r| r["user"] == "alice").unwrap();
    assert_eq!(alice["assigned_ip"], a_ip.as_str());
    assert!(alice["peer"].as_str().unwrap().starts_with("198.18.1.2:"), "{alice}");
    let bob = rows.iter().find(|r| r["user"] == "bob").unwrap();
    assert!(bob["peer"].as_str().unwrap().starts_with("198.18.2.2:"), "bob is behind the NAT: {bob}");
    let rx_before = alice["rx_packets"].as_u64().unwrap();
    assert!(ping(&t.c1, LAN_HOST));
    let rx_after = sessions(&gw).iter().find(|r| r["user"] == "alice").unwrap()["rx_packets"]
        .as_u64()
        .unwrap();
    assert!(rx_after > rx_before, "counters grow: {rx_before} -> {rx_after}");

    // Exit restores the client host: DNS, the host route, the interface.
    assert!(b.stop().success(), "{}", b.stderr());
    assert_eq!(b.resolv_conf(), "nameserver 192.0.2.53\n");
    assert!(a.stop().success(), "{}", a.stderr());
    let routes = t.c1.must("ip -4 route; ip link show");
    assert!(!routes.contains("198.18.0.1 via") && !routes.contains("vpnc0"), "{routes}");
    wait::until("the gateway to drop both sessions", T, || sessions(&gw).is_empty().then_some(()));
}
