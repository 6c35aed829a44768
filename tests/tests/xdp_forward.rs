//! XDP forwarding (docs/decisions.md #54): a fast-path call's packets to
//! and from a LAN host are decapsulated, encapsulated and redirected in
//! XDP, not by TC and the stack; an operator's netfilter rule on the
//! forwarding path turns it off (and the rule sees the packets), and its
//! removal turns it back on; route changes apply at once despite the
//! route cache, which policy rules turn off; spoofed inner sources are
//! still dropped;
//! `down` detaches the LAN interface's program. Needs root.
use std::{net::Ipv4Addr, time::Duration};

use vpn_tests::{
    call::Call,
    gateway::Gateway,
    l2tp_peer::L2tpCall,
    native_client::add_user,
    netns::enter_thread,
    packet::{checksum, icmp_echo},
    pptp_peer::PptpCall,
    topology::{Topology, GW_WAN, LAN_HOST},
    wait,
};

const ECHOES: u64 = 20;

/// `n` echo requests from `src` to the LAN host; how many were answered.
/// A reply counts only as the gateway must have forwarded it: one hop
/// (the LAN host sends TTL 64) and its header checksum still right, which
/// XDP forwarding updates itself.
fn pings(call: &mut dyn Call, src: Ipv4Addr, n: u64, first_seq: u16) -> u64 {
    let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
    let mut answered = 0;
    for i in 0..n {
        let echo = icmp_echo(src.octets(), lan.octets(), 7, first_seq + i as u16);
        let replies = call.echo(&echo, Duration::from_secs(2));
        if replies.iter().any(|ip| {
            ip[9] == 1
                && ip[20] == 0
                && ip[12..16] == lan.octets()
                && ip[8] == 63
                && checksum(&ip[..20]) == 0
        }) {
            answered += 1;
        }
    }
    answered
}

struct Counts {
    xdp_rx: u64,
    xdp_tx: u64,
    tc_rx: u64,
    tc_tx: u64,
}

fn counts(gw: &Gateway) -> Counts {
    Counts {
        xdp_rx: gw.count("counters", "xdp_fwd_rx"),
        xdp_tx: gw.count("counters", "xdp_fwd_tx"),
        tc_rx: gw.count("counters", "fast_rx"),
        tc_tx: gw.count("counters", "fast_tx"),
    }
}

/// Echoes through `call`; returns how the counters moved.
fn measure(gw: &Gateway, call: &mut dyn Call, seq: u16) -> Counts {
    let before = counts(gw);
    let src = call.address();
    let answered = pings(call, src, ECHOES, seq);
    assert_eq!(answered, ECHOES, "every echo answered");
    let after = counts(gw);
    Counts {
        xdp_rx: after.xdp_rx - before.xdp_rx,
        xdp_tx: after.xdp_tx - before.xdp_tx,
        tc_rx: after.tc_rx - before.tc_rx,
        tc_tx: after.tc_tx - before.tc_tx,
    }
}

fn forwarding(gw: &Gateway) -> serde_json::Value {
    gw.status()["xdp_forward"].clone()
}

fn nft_rule_packets(t: &Topology) -> u64 {
    let rule = t.gw.must("nft -j list chain inet opfw vetting");
    let seen: serde_json::Value = serde_json::from_str(&rule).unwrap();
    seen["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| {
            i["rule"]["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e["counter"]["packets"].as_u64())
        })
        .expect("the rule's counter")
}

/// A UDP datagram the LAN host's stack left with its checksum unfinished
/// (veth's checksum offload: the pseudo-header sum alone) reaches the
/// client finished, though its flow is cached on every CPU and it is
/// smaller than the pings that cached it: XDP leaves it to the stack,
/// which finishes it. (Nothing on the way would notice a wrong checksum:
/// veths mark what they carry as checked.) The same for a TTL of 1.
fn unfinished_checksums_are_finished(t: &Topology, gw: &Gateway, call: &mut dyn Call) {
    let client = call.address();
    let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for cpu in 0..cpus {
        t.lan.sh(&format!(
            "taskset -c {cpu} ping -c 2 -i 0.05 -W 0.1 -q {client}"
        ));
    }
    let to_stack = gw.count("counters", "xdp_fwd_to_stack");
    for cpu in 0..cpus {
        t.lan.must(&format!(
            "taskset -c {cpu} python3 -c \"import socket; \
             socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'unfinished', ('{client}', 9))\""
        ));
    }
    // The LAN host's pings arrived first; an exchange returns what came
    // back by the first packet, so as many as it takes.
    let mut udp: Vec<Vec<u8>> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while udp.len() < cpus && std::time::Instant::now() < deadline {
        let echo = icmp_echo(client.octets(), lan.octets(), 7, 500);
        udp.extend(
            call.echo(&echo, Duration::from_millis(500))
                .into_iter()
                .filter(|ip| ip[9] == 17 && ip[12..16] == lan.octets()),
        );
    }
    assert_eq!(udp.len(), cpus, "one datagram from each CPU: {udp:?}");
    for ip in &udp {
        let segment = &ip[20..];
        let mut pseudo = ip[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(segment);
        assert_eq!(checksum(&pseudo), 0, "a finished UDP checksum: {ip:?}");
    }
    assert!(
        gw.count("counters", "xdp_fwd_to_stack") >= to_stack + cpus as u64,
        "left to the stack"
    );
    // Nor does the cached flow skip the TTL: an echo with TTL 1 is the
    // stack's, which answers that it expired.
    let before = gw.count("counters", "xdp_fwd_tx");
    for cpu in 0..cpus {
        let out = t
            .lan
            .sh(&format!("taskset -c {cpu} ping -c 1 -t 1 -W 2 {client}"));
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("Time to live exceeded"), "{out}");
    }
    assert_eq!(gw.count("counters", "xdp_fwd_tx"), before, "none in XDP");
}

/// Both calls through XDP; an operator rule turns it off and back on;
/// spoofs still dropped.
fn exercise(t: &Topology, gw: &Gateway, pptp: &mut PptpCall, l2tp: &mut L2tpCall) {
    let calls: [(&str, &mut dyn Call); 2] = [("pptp", pptp), ("l2tp", l2tp)];
    for (name, call) in calls {
        // The first echo may find the LAN host's neighbour entry missing:
        // that one takes the stack, which resolves it.
        let src = call.address();
        pings(call, src, 1, 0);
        let d = measure(gw, call, 100);
        assert!(
            d.xdp_rx >= ECHOES,
            "{name}: {} decapsulated in XDP",
            d.xdp_rx
        );
        assert!(
            d.xdp_tx >= ECHOES,
            "{name}: {} encapsulated in XDP",
            d.xdp_tx
        );
        assert_eq!((d.tc_rx, d.tc_tx), (0, 0), "{name}: nothing through TC");
        // The flow is cached now (decisions #61, #64), which must not skip
        // the TTL: an echo with TTL 1 is the stack's, which answers that it
        // expired; XDP forwards none of it.
        let before = counts(gw).xdp_rx;
        let mut echo = icmp_echo(
            src.octets(),
            LAN_HOST.parse::<Ipv4Addr>().unwrap().octets(),
            7,
            90,
        );
        echo[8] = 1;
        echo[10..12].fill(0);
        let c = checksum(&echo[..20]);
        echo[10..12].copy_from_slice(&c.to_be_bytes());
        let replies = call.echo(&echo, Duration::from_secs(2));
        assert!(
            replies.iter().any(|ip| ip[9] == 1 && ip[20] == 11),
            "{name}: time exceeded for TTL 1: {replies:?}"
        );
        assert_eq!(
            counts(gw).xdp_rx,
            before,
            "{name}: TTL 1 not forwarded in XDP"
        );
    }

    // An operator's forward rule: XDP would bypass it, so it stops.
    t.gw.must(
        "nft add table inet opfw && \
         nft 'add chain inet opfw vetting { type filter hook forward priority 0; policy accept; }' && \
         nft add rule inet opfw vetting ip daddr 172.16.10.2 icmp type echo-request counter",
    );
    wait::until("XDP forwarding off", Duration::from_secs(15), || {
        (forwarding(gw)["active"] == false).then_some(())
    });
    let fwd = forwarding(gw);
    assert!(
        fwd["bypassed"]
            .to_string()
            .contains("inet opfw vetting: 1 rule"),
        "{fwd}"
    );
    let text = String::from_utf8_lossy(&gw.ctl(&["status"]).stdout).to_string();
    assert!(text.contains("forwarding: TC path"), "{text}");
    let calls: [(&str, &mut dyn Call); 2] = [("pptp", pptp), ("l2tp", l2tp)];
    for (name, call) in calls {
        let d = measure(gw, call, 200);
        assert_eq!((d.xdp_rx, d.xdp_tx), (0, 0), "{name}: nothing in XDP");
        assert!(d.tc_rx >= ECHOES && d.tc_tx >= ECHOES, "{name}: through TC");
    }
    assert_eq!(
        nft_rule_packets(t),
        2 * ECHOES,
        "the operator's rule saw every echo"
    );

    // Gone again: XDP forwarding resumes.
    t.gw.must("nft delete table inet opfw");
    wait::until("XDP forwarding on", Duration::from_secs(15), || {
        (forwarding(gw)["active"] == true).then_some(())
    });
    let d = measure(gw, l2tp, 300);
    assert!(d.xdp_rx >= ECHOES && d.xdp_tx >= ECHOES, "back in XDP");

    // The route cache follows route changes: a blackhole route for the
    // LAN host stops the echoes at once (they reach the stack, which drops
    // them), its removal lets them through XDP again.
    assert_eq!(forwarding(gw)["route_cache"], true);
    t.gw.must("ip route add blackhole 172.16.10.2/32");
    let src = l2tp.address();
    wait::until(
        "the blackhole route applies",
        Duration::from_secs(5),
        || (pings(l2tp, src, 1, 350) == 0).then_some(()),
    );
    let before = counts(gw).xdp_rx;
    assert_eq!(pings(l2tp, src, 5, 360), 0, "no echo through a blackhole");
    assert_eq!(counts(gw).xdp_rx, before, "none forwarded by XDP");
    t.gw.must("ip route del blackhole 172.16.10.2/32");
    let d = measure(gw, l2tp, 370);
    assert!(d.xdp_rx >= ECHOES, "back in XDP after the route went");
    // A policy rule the cache's key cannot express turns the cache off.
    t.gw.must("ip rule add ipproto udp dport 9999 table main priority 100");
    wait::until("route cache off", Duration::from_secs(5), || {
        (forwarding(gw)["route_cache"] == false).then_some(())
    });
    let d = measure(gw, l2tp, 380);
    assert!(
        d.xdp_rx >= ECHOES,
        "still forwarded in XDP without the cache"
    );
    t.gw.must("ip rule del priority 100");
    wait::until("route cache on", Duration::from_secs(5), || {
        (forwarding(gw)["route_cache"] == true).then_some(())
    });

    // `vpn-ctl restart` keeps the LAN program, the maps and the forwarding.
    let said = gw.restart_in_place();
    assert!(said.contains("2 of 2 sessions carried over"), "{said}");
    assert_eq!(forwarding(gw)["active"], true);
    let d = measure(gw, l2tp, 390);
    assert!(
        d.xdp_rx >= ECHOES && d.xdp_tx >= ECHOES,
        "in XDP after a restart"
    );

    // A spoofed inner source is not forwarded: TC drops and counts it.
    let spoofs = gw.count("drops", "spoofed_inner_source");
    let other = Ipv4Addr::new(172, 16, 10, 99);
    assert_eq!(pings(l2tp, other, 3, 400), 0);
    wait::until("spoofs counted", Duration::from_secs(5), || {
        (gw.count("drops", "spoofed_inner_source") >= spoofs + 3).then_some(())
    });

    unfinished_checksums_are_finished(t, gw, l2tp);

    // A session's cached flows end with it. The LAN host sends to the PPTP
    // client from each CPU in turn (a veth runs lan0's XDP on the sender's
    // CPU), which caches the flow on every CPU; once the session is
    // killed, the same packets find no flow and are not sent.
    let client = pptp.address().to_string();
    let from_every_cpu = || {
        let before = counts(gw).xdp_tx;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for cpu in 0..cpus {
            t.lan.sh(&format!(
                "taskset -c {cpu} ping -c 3 -i 0.05 -W 0.1 -q {client}"
            ));
        }
        counts(gw).xdp_tx - before
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    assert!(from_every_cpu() >= 3 * cpus, "encapsulated in XDP");
    // Frames to another MAC (a bridge port's, promiscuous mode's) are not
    // the gateway's to route, though their flow is cached: the LAN host
    // addresses its echoes to a MAC that is not lan0's.
    t.lan
        .must("ip neigh replace 172.16.10.1 lladdr 02:00:00:00:00:99 dev eth0 nud permanent");
    assert_eq!(
        from_every_cpu(),
        0,
        "nothing sent for frames to another MAC"
    );
    t.lan.must("ip neigh del 172.16.10.1 dev eth0");
    assert!(from_every_cpu() >= 3 * cpus, "encapsulated in XDP again");
    let id = gw
        .sessions()
        .iter()
        .find(|r| r["assigned_ip"] == client.as_str())
        .and_then(|r| r["id"].as_u64())
        .expect("the PPTP session");
    assert!(gw.ctl(&["kill", &id.to_string()]).status.success());
    // This client reads nothing now, so the gateway's Terminate-Requests
    // go unanswered: the call is cleared when they run out, 6 s on
    // (decisions #66).
    wait::until("the session to be gone", Duration::from_secs(15), || {
        (gw.sessions().len() == 1).then_some(())
    });
    assert_eq!(from_every_cpu(), 0, "nothing sent for an ended session");
}

#[test]
fn fast_path_calls_forward_in_xdp_unless_netfilter_rules_would_be_bypassed() {
    let t = Topology::build();
    // A veth hands redirected frames to its peer only through the peer's
    // NAPI, which GRO turns on (a NIC driver with XDP needs nothing).
    t.lan.must("ethtool -K eth0 gro on");
    t.inet.must("ethtool -K gw0 gro on");
    let mut gw = Gateway::start(
        &t.gw,
        "[pptp]\nenabled = true\nrequire_mppe = false\n\
         [l2tp]\nallow_plain = true\n\
         [xdp]\nforward_interfaces = [\"lan0\"]\n",
    );
    let fwd = forwarding(&gw);
    assert_eq!(fwd["interfaces"], serde_json::json!(["lan0"]));
    assert_eq!(fwd["active"], true, "{fwd}");
    let link = t.gw.must("ip link show lan0");
    assert!(link.contains("xdp"), "{link}");

    add_user(&gw, "bob", "bob-password-1", None);
    add_user(&gw, "carol", "carol-password-1", None);
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_thread(&t.c1.name);
            let mut pptp = PptpCall::connect(gw_wan, "bob", "bob-password-1", false, 11).unwrap();
            let mut l2tp = L2tpCall::connect(gw_wan, "carol", "carol-password-1", 21).unwrap();
            let rows = gw.sessions();
            assert!(
                rows.iter().all(|r| r["fast_path"] == true),
                "both calls on the fast path: {rows:?}"
            );
            exercise(&t, &gw, &mut pptp, &mut l2tp);
        })
        .join()
        .unwrap();
    });
    assert!(gw.down().success());
    let link = t.gw.must("ip link show lan0");
    assert!(
        !link.contains("xdp"),
        "down detaches lan0's program: {link}"
    );
}
