//! The interop harness itself: QEMU guests attached to the topology, driven
//! through their agent. The protocol tests build on exactly this. Needs root.
use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    process::Stdio,
    time::Duration,
};

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    topology::{Topology, GW_WAN, INET, NAT_WAN},
};

const T: Duration = Duration::from_secs(30);

#[test]
fn guest_on_the_internet_gets_its_address_and_pings_the_gateway() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let mut g = Guest::start(&t, "c1", Site::Internet(1));

    let addrs = g.must("ip -4 -br addr show dev eth0", T);
    assert!(addrs.contains(&g.addr()), "guest address: {addrs}");

    // The clients the protocol tests drive, and the kernel parts they need.
    g.must(
        "for c in pppd pptp xl2tpd ipsec swanctl iperf3 tcpdump; do command -v $c || exit 1; done && \
         test -c /dev/ppp && modprobe -a pptp l2tp_ppp esp4 xfrm_user",
        T,
    );

    let before = gw.count("counters", "xdp_pass_ipv4");
    let out = g.must(&format!("ping -c 3 -W 5 {GW_WAN}"), T);
    assert!(out.contains(" 0% packet loss"), "{out}");
    // The echo requests went through the gateway's XDP program.
    let after = gw.count("counters", "xdp_pass_ipv4");
    assert!(after >= before + 3, "xdp_pass_ipv4 {before} -> {after}");
}

#[test]
fn a_failing_script_reports_its_code_output_and_timeout() {
    let t = Topology::build();
    let mut g = Guest::start(&t, "c1", Site::Internet(2));

    let r = g.run("echo to-stdout; echo to-stderr >&2; exit 3", T);
    assert_eq!(r.code, 3);
    assert!(
        r.output.contains("to-stdout") && r.output.contains("to-stderr"),
        "{}",
        r.output
    );

    let err = catch_unwind(AssertUnwindSafe(|| g.must("echo marker-7f; false", T)))
        .expect_err("must() panics when the script fails");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("marker-7f"),
        "panic message lacks the output: {msg}"
    );
    assert!(msg.contains("exited with code 1"), "{msg}");
    assert!(msg.contains("guest console"), "{msg}");

    // A script past its deadline is stopped in the guest (timeout's exit
    // code; run() itself gives up shortly after the deadline), and the
    // guest stays usable.
    let r = g.run("sleep 600", Duration::from_secs(2));
    assert_eq!(r.code, 124, "timeout's exit code");
    assert_eq!(g.must("echo alive", T).trim(), "alive");
}

#[test]
fn two_guests_behind_the_nat_box_reach_the_internet_host() {
    let t = Topology::build();
    let mut guests = Guest::start_all(
        &t,
        &[("n1", Site::BehindNat(1)), ("n2", Site::BehindNat(2))],
    );
    let n2_addr = guests[1].addr();
    for g in &mut guests {
        g.must(&format!("ping -c 2 -W 5 {INET}"), T);
    }
    // Two distinct hosts on one LAN.
    guests[0].must(&format!("ping -c 1 -W 5 {n2_addr}"), T);

    // A TCP transfer from behind the NAT: the internet host sees the NAT's address.
    let server = t
        .inet
        .cmd("iperf3")
        .args(["-s", "-1", "--forceflush"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = guests[1].must(
        &format!(
            "for i in $(seq 50); do iperf3 -c {INET} -n 4M && exit 0; sleep 0.2; done; exit 1"
        ),
        Duration::from_secs(60),
    );
    assert!(out.contains("receiver"), "{out}");
    let server = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&server.stdout);
    assert!(
        log.contains(&format!("Accepted connection from {NAT_WAN}")),
        "iperf3 server log:\n{log}"
    );
}
