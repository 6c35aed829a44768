//! L2TP with the real client: xl2tpd + pppd in QEMU guests against
//! `vpn-ctl up` with plain L2TP allowed. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    pptp_client::ppp_address,
    topology::{Topology, GW_WAN, INET, LAN_HOST},
    wait,
};

const T: Duration = Duration::from_secs(60);
const PLAIN: &str = "[gateway]\ndns = [\"172.16.10.2\"]\n[l2tp]\nallow_plain = true\n";

fn sessions(gw: &Gateway) -> Vec<serde_json::Value> {
    let out = gw.ctl(&["sessions", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn alice() -> L2tpClient<'static> {
    L2tpClient {
        user: "alice",
        password: "alice-password-1",
        secret: None,
    }
}

#[test]
fn l2tp_with_mschapv2_reaches_lan_internet_and_is_killed() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, PLAIN);
    add_user(&gw, "alice", "alice-password-1", None);
    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    let out = g.must(&alice().connect_script(40), T);
    assert!(out.contains("inet 10.99.0."), "address on ppp0:\n{out}");
    assert!(out.contains("nameserver 172.16.10.2"), "DNS pushed:\n{out}");
    g.must(
        &format!("ping -c 3 -W 5 10.99.0.1 && ping -c 3 -W 5 {LAN_HOST}"),
        T,
    );
    g.must(
        &format!("ip route replace {INET}/32 dev ppp0 && ping -c 3 -W 5 {INET}"),
        T,
    );
    let rows = sessions(&gw);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["protocol"], "l2tp");
    assert_eq!(r["user"], "alice");
    assert_eq!(r["state"], "up");
    assert_eq!(r["encryption"], "none");
    assert!(
        r["peer"].as_str().unwrap().starts_with("198.18.21.2:"),
        "{r}"
    );
    assert!(r["rx_packets"].as_u64().unwrap() >= 9, "{r}");

    // TCP both ways through the tunnel.
    for reverse in ["", "-R"] {
        let mut server = t
            .lan
            .cmd("timeout")
            .args(["90", "iperf3", "-s", "-1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        g.must(
            &format!(
                "for i in $(seq 50); do iperf3 -c {LAN_HOST} -n 4M {reverse} && exit 0; sleep 0.2; done; exit 1"
            ),
            Duration::from_secs(120),
        );
        let _ = server.wait();
    }
    assert_eq!(gw.count("counters", "l2tp_tunnels"), 1);

    // kill: the client's link goes down; the session and its address go.
    let id = r["id"].as_u64().unwrap();
    assert!(gw.ctl(&["kill", &id.to_string()]).status.success());
    g.must(
        "for i in $(seq 200); do ip link show ppp0 >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1",
        T,
    );
    wait::until("the session to be gone", T, || {
        sessions(&gw).is_empty().then_some(())
    });
    assert_eq!(gw.count("counters", "pool_addresses_in_use"), 0);
    assert!(
        gw.log().contains("ended by the administrator"),
        "{}",
        gw.log()
    );
    let _ = GW_WAN;
    let _ = DISCONNECT_SCRIPT;
    let _ = ppp_address;
}
