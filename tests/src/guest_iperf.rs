//! iperf3 from a QEMU guest to the LAN host, for the benchmarks and the
//! interop tests.
use std::{process::Stdio, time::Duration};

use crate::{guest::Guest, topology::Topology, topology::LAN_HOST};

/// (TCP Mbit/s, 64-byte UDP packets/s) from the guest to the LAN host,
/// `secs` seconds each; zeros where a run failed.
pub fn guest_to_lan(t: &Topology, g: &mut Guest, secs: u32) -> (f64, f64) {
    let mut run = |args: &str| -> serde_json::Value {
        let mut server = t
            .lan
            .cmd("timeout")
            .args(["60", "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let out = g.must(
            &format!(
                "for i in $(seq 50); do iperf3 -c {LAN_HOST} -t {secs} -O 1 -J {args} > /tmp/r.json && break; sleep 0.2; done; cat /tmp/r.json"
            ),
            Duration::from_secs(90),
        );
        let _ = server.wait();
        serde_json::from_str(out.trim()).unwrap_or_default()
    };
    let tcp = run("");
    let mbit = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6;
    let udp = run("-u -b 0 -l 64");
    let s = &udp["end"]["sum"];
    let got = s["packets"].as_f64().unwrap_or(0.0) - s["lost_packets"].as_f64().unwrap_or(0.0);
    (mbit, got / s["seconds"].as_f64().unwrap_or(1.0).max(0.001))
}

/// `bytes` (e.g. "4M") over TCP from the guest to the LAN host, or from
/// the LAN host to the guest with `reverse`; panics if iperf3 never
/// completes (it is retried while the tunnel comes up).
pub fn tcp_to_lan(t: &Topology, g: &mut Guest, bytes: &str, reverse: bool) {
    let mut server = t
        .lan
        .cmd("timeout")
        .args(["90", "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let r = if reverse { "-R" } else { "" };
    g.must(
        &format!(
            "for i in $(seq 50); do iperf3 -c {LAN_HOST} -n {bytes} {r} && exit 0; sleep 0.2; done; exit 1"
        ),
        Duration::from_secs(120),
    );
    let _ = server.wait();
}
