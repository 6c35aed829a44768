//! L2TP with the real client: xl2tpd + pppd in QEMU guests against
//! `vpn-ctl up` with plain L2TP allowed. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{dhcp_inform, L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    pptp_client::ppp_address,
    topology::{Topology, GW_WAN, INET, LAN_HOST},
    wait,
};

const T: Duration = Duration::from_secs(60);
const PLAIN: &str = "[gateway]\ndns = [\"172.16.10.2\"]\n[l2tp]\nallow_plain = true\n";

fn alice() -> L2tpClient<'static> {
    L2tpClient {
        user: "alice",
        password: "alice-password-1",
        secret: None,
        ipsec: None,
    }
}

/// A Windows-style DHCPINFORM over the call (on the fast path's session)
/// is answered by the gateway: the LAN as a classless static route
/// (options 121 and 249) and the DNS.
fn dhcp_inform_gets_the_lan_route(gw: &Gateway, g: &mut Guest, connect_output: &str) {
    let opts = dhcp_inform(g, connect_output);
    assert_eq!(opts.get(&53), Some(&vec![5]), "DHCPACK");
    let route = vec![24, 172, 16, 10, 10, 99, 0, 1];
    assert_eq!(
        opts.get(&121),
        Some(&route),
        "RFC 3442 route to the LAN via the gateway"
    );
    assert_eq!(opts.get(&249), Some(&route));
    assert_eq!(opts.get(&6), Some(&vec![172, 16, 10, 2]));
    assert_eq!(gw.count("counters", "l2tp_dhcp_informs"), 1);
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
    dhcp_inform_gets_the_lan_route(&gw, &mut g, &out);
    let rows = gw.sessions();
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
    for reverse in [false, true] {
        vpn_tests::guest_iperf::tcp_to_lan(&t, &mut g, "4M", reverse);
    }
    assert_eq!(gw.count("counters", "l2tp_tunnels"), 1);

    // The kernel carried the data: everything the client sent went through
    // the fast path; the daemon handled only the DHCPINFORM.
    let row = &gw.sessions()[0];
    assert_eq!(row["fast_path"], true, "{row}");
    let fast_rx = row["fast_path_rx_packets"].as_u64().unwrap();
    assert!(fast_rx > 2000, "8 MB of TCP both ways: {row}");
    assert_eq!(
        fast_rx + 1,
        row["rx_packets"].as_u64().unwrap(),
        "the daemon handled only the DHCPINFORM: {row}"
    );
    // Pings from the LAN host go both ways in the kernel only.
    let client = ppp_address(&out);
    let before = row.clone();
    t.lan.must(&format!("ping -c 5 -W 5 {client}"));
    let after = &gw.sessions()[0];
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert!(delta("fast_path_tx_packets") >= 5, "{after}");
    assert_eq!(
        delta("tx_packets"),
        delta("fast_path_tx_packets"),
        "{after}"
    );
    assert_eq!(
        delta("rx_packets"),
        delta("fast_path_rx_packets"),
        "{after}"
    );

    // `vpn-ctl restart` with pings running: the call goes on, still in the
    // kernel, and it is the same session.
    vpn_tests::restart::ping_across_restart(&gw, &mut g, LAN_HOST);
    let row = &gw.sessions()[0];
    assert_eq!(
        (&row["id"], &row["fast_path"]),
        (&r["id"], &serde_json::json!(true))
    );

    // kill: the client's link goes down; the session and its address go.
    let id = r["id"].as_u64().unwrap();
    assert!(gw.ctl(&["kill", &id.to_string()]).status.success());
    g.must(
        "for i in $(seq 200); do ip link show ppp0 >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1",
        T,
    );
    wait::until("the session to be gone", T, || {
        gw.sessions().is_empty().then_some(())
    });
    assert_eq!(gw.count("counters", "pool_addresses_in_use"), 0);
    let maps = gw.status()["maps"].clone();
    let fill = |name: &str| {
        maps.as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["entries"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(
        fill("VPN_TUNNEL_SESSIONS"),
        0,
        "kernel entries removed: {maps}"
    );
    assert_eq!(
        fill("VPN_ADDR_SESSIONS"),
        0,
        "kernel entries removed: {maps}"
    );
    assert!(
        gw.log().contains("ended by the administrator"),
        "{}",
        gw.log()
    );
}

#[test]
fn l2tp_with_a_tunnel_secret_and_hidden_avps_over_a_lossy_link() {
    let t = Topology::build();
    let gw = Gateway::start(
        &t.gw,
        &format!("{PLAIN}secret = \"tunnel-s3cret-9\"\nhide_avps = true\n"),
    );
    add_user(&gw, "alice", "alice-password-1", None);
    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    // 10% loss each way on the client's link (the guest kernel has netem).
    g.must(
        "dev=$(ip route show default | awk '{print $5}'); tc qdisc add dev $dev root netem loss 10%",
        T,
    );
    let client = L2tpClient {
        secret: Some("tunnel-s3cret-9"),
        ..alice()
    };
    let out = g.must(&client.connect_script(60), Duration::from_secs(120));
    assert!(out.contains("inet 10.99.0."), "address on ppp0:\n{out}");
    // Pings may be lost, and IPCP may be renegotiating after a lost
    // Configure-Ack: wait (with a deadline) until one comes back.
    g.must(
        &format!(
            "for i in $(seq 30); do ping -c 1 -W 2 {LAN_HOST} >/dev/null && exit 0; done; exit 1"
        ),
        Duration::from_secs(90),
    );
    assert_eq!(gw.sessions()[0]["state"], "up");
    // The client's hidden AVPs were read (none counted unreadable), and
    // the secret never reached the log.
    assert_eq!(gw.count("drops", "daemon_l2tp_hidden_unreadable"), 0);
    assert!(!gw.log().contains("tunnel-s3cret-9"));
    assert!(!gw
        .ctl(&["status", "--json"])
        .stdout
        .windows(15)
        .any(|w| w == b"tunnel-s3cret-9"));

    // A client with another secret does not get a tunnel.
    g.must(DISCONNECT_SCRIPT, T);
    g.must(
        "tc qdisc del dev $(ip route show default | awk '{print $5}') root",
        T,
    );
    let wrong = L2tpClient {
        secret: Some("not-the-secret"),
        ..alice()
    };
    let r = g.run(&wrong.connect_script(15), T);
    assert_ne!(r.code, 0, "{}", r.output);
    wait::until("the refused tunnel to be gone", T, || {
        (gw.count("counters", "l2tp_tunnels") == 0 && gw.sessions().is_empty()).then_some(())
    });
}

#[test]
fn two_l2tp_clients_behind_one_nat_reach_each_other_and_hang_up() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, PLAIN);
    add_user(&gw, "alice", "alice-password-1", Some("10.99.0.50"));
    add_user(&gw, "bob", "bob-password-22", None);
    let mut guests = Guest::start_all(
        &t,
        &[("n1", Site::BehindNat(1)), ("n2", Site::BehindNat(2))],
    );
    let a = guests[0].must(&alice().connect_script(40), T);
    assert!(a.contains("inet 10.99.0.50"), "static address:\n{a}");
    let bob = L2tpClient {
        user: "bob",
        password: "bob-password-22",
        secret: None,
        ipsec: None,
    };
    let b = guests[1].must(&bob.connect_script(40), T);
    let b_ip = ppp_address(&b);
    // Both tunnels come from the NAT box's one address, on two ports.
    let rows = gw.sessions();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["peer"].as_str().unwrap().starts_with("198.18.2.2:")));
    assert_ne!(rows[0]["peer"], rows[1]["peer"]);
    assert_eq!(gw.count("counters", "l2tp_tunnels"), 2);
    guests[0].must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
    // Client to client: turned around in the kernel, never through vpn0.
    let hairpin = gw.count("counters", "fast_hairpin");
    guests[0].must(&format!("ping -c 3 -W 5 {b_ip}"), T);
    assert!(gw.count("counters", "fast_hairpin") >= hairpin + 6);
    guests[1].must("ping -c 3 -W 5 10.99.0.50", T);

    // Bob hangs up: CDN and StopCCN; his session and tunnel are gone.
    guests[1].must(DISCONNECT_SCRIPT, T);
    wait::until("bob's session and tunnel to be gone", T, || {
        let rows = gw.sessions();
        (rows.len() == 1 && gw.count("counters", "l2tp_tunnels") == 1).then_some(rows)
    });
    assert_eq!(gw.sessions()[0]["user"], "alice");
    guests[0].must(&format!("ping -c 2 -W 5 {LAN_HOST}"), T);
}

#[test]
fn l2tp_wrong_password_ends_with_a_clean_cdn() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, PLAIN);
    add_user(&gw, "alice", "alice-password-1", None);
    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    let wrong = L2tpClient {
        password: "wrong-password-xyz",
        ..alice()
    };
    let r = g.run(&wrong.connect_script(15), T);
    assert_ne!(r.code, 0, "pppd must fail:\n{}", r.output);
    wait::until("the failed login in the log", T, || {
        gw.log()
            .contains("login failed for user `alice`")
            .then_some(())
    });
    assert!(!gw.log().contains("wrong-password-xyz"));
    assert!(gw.count("drops", "daemon_l2tp_login_failed") >= 1);
    // Cleared by a CDN from either side: the gateway's once its
    // Terminate-Request is acknowledged, or xl2tpd's once pppd, refused,
    // has terminated the link itself and exited (decisions #66).
    wait::until("the call to be cleared", T, || {
        let log = gw.log();
        (gw.sessions().is_empty()
            && (log.contains("ended: the PPP link ended")
                || log.contains("ended: the client hung up")))
        .then_some(())
    });
    // The gateway still serves: the right password works next.
    g.must(DISCONNECT_SCRIPT, T);
    let out = g.must(&alice().connect_script(40), T);
    assert!(out.contains("inet 10.99.0."), "{out}");
}

#[test]
fn malformed_l2tp_is_counted_and_the_session_keeps_working() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, &format!("{PLAIN}max_half_open = 8\n"));
    add_user(&gw, "alice", "alice-password-1", None);
    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    g.must(&alice().connect_script(40), T);
    t.inet.must(&format!(
        "python3 {}/scripts/l2tp_garbage.py {GW_WAN} flood 100",
        env!("CARGO_MANIFEST_DIR")
    ));
    for (name, at_least) in [
        ("daemon_l2tp_malformed", 6),
        ("daemon_l2tp_unknown_session", 5),
        ("daemon_l2tp_unknown_tunnel", 5),
        ("daemon_l2tp_hidden_unreadable", 1),
        ("daemon_l2tp_out_of_window", 3),
        ("daemon_l2tp_busy", 50),
    ] {
        wait::until(&format!("{name} >= {at_least}"), T, || {
            (gw.count("drops", name) >= at_least).then_some(())
        });
    }
    // Meanwhile the real session still carries traffic.
    g.must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
    assert_eq!(gw.sessions().len(), 1);
    assert_eq!(gw.sessions()[0]["state"], "up");
}

#[test]
fn plain_l2tp_is_refused_unless_allowed() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let out = t.inet.must(&format!(
        "python3 {}/scripts/l2tp_garbage.py {GW_WAN} refused",
        env!("CARGO_MANIFEST_DIR")
    ));
    assert_eq!(out.trim(), "stopccn");
    assert_eq!(gw.count("drops", "daemon_l2tp_plain_refused"), 1);
    let status = String::from_utf8(gw.ctl(&["status"]).stdout).unwrap();
    assert!(status.contains("plain L2TP"), "{status}");
}
