//! `cargo xtask bench pptp`: PPTP data paths, in one run on the standard
//! topology, from a QEMU guest (the real pppd + pptp-linux client) to the
//! LAN host through the gateway:
//!
//! - plain forwarding, no tunnel (the baseline);
//! - PPTP without MPPE (PPP in GRE, through the gateway's userspace path);
//! - PPTP with MPPE-128 (the same, plus RC4 in userspace);
//!
//! each as TCP Mbit/s and 64-byte UDP packets/s (iperf3), with ratios. The
//! guest runs under TCG, so its own CPU bounds every row: compare the ratios.
use std::{process::Stdio, time::Duration};

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST},
};

const SECS: u32 = 5;

fn connect(mppe: bool) -> String {
    let enc = if mppe { "require-mppe-128" } else { "noccp" };
    format!(
        r#"mkdir -p /etc/ppp/peers
cat > /etc/ppp/peers/gw <<PEERS
pty "pptp {GW_WAN} --nolaunchpppd"
name bench
password bench-password-1
remotename vpn-ctl
{enc}
refuse-pap
refuse-eap
refuse-chap
refuse-mschap
noauth
nodefaultroute
maxfail 1
PEERS
pppd call gw updetach || exit 1
ip route replace 172.16.10.0/24 dev ppp0
"#
    )
}

const DISCONNECT: &str =
    "ip route del 172.16.10.0/24 2>/dev/null; kill $(pidof pppd) 2>/dev/null; \
     for i in $(seq 100); do pidof pppd >/dev/null || exit 0; sleep 0.1; done";

/// (TCP Mbit/s, UDP packets/s) from the guest to the LAN host.
fn measure(t: &Topology, g: &mut Guest) -> (f64, f64) {
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
                "for i in $(seq 50); do iperf3 -c {LAN_HOST} -t {SECS} -O 1 -J {args} > /tmp/r.json && break; sleep 0.2; done; cat /tmp/r.json"
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
    let pps = got / s["seconds"].as_f64().unwrap_or(1.0).max(0.001);
    (mbit, pps)
}

fn main() -> anyhow::Result<()> {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[pptp]\nenabled = true\nrequire_mppe = false\n");
    add_user(&gw, "bench", "bench-password-1", None);
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");

    let plain = measure(&t, &mut g);
    g.must(&connect(false), Duration::from_secs(60));
    let clear = measure(&t, &mut g);
    g.must(DISCONNECT, Duration::from_secs(30));
    g.must(&connect(true), Duration::from_secs(60));
    let mppe = measure(&t, &mut g);
    g.must(DISCONNECT, Duration::from_secs(30));

    println!("PPTP (QEMU guest with pppd/pptp-linux -> LAN host through the gateway; iperf3, {SECS} s each)");
    println!("  path                                  TCP Mbit/s    UDP 64 B pkt/s");
    for (name, (m, p)) in [
        ("plain forwarding, no tunnel", plain),
        ("PPTP, no MPPE (userspace path)", clear),
        ("PPTP, MPPE-128 (userspace path)", mppe),
    ] {
        println!("  {name:<36} {m:>11.0} {p:>17.0}");
    }
    println!(
        "  ratios to plain forwarding: no-MPPE {:.2} / {:.2}, MPPE {:.2} / {:.2} (TCP / pkt/s)",
        clear.0 / plain.0,
        clear.1 / plain.1,
        mppe.0 / plain.0,
        mppe.1 / plain.1
    );
    println!("  in-kernel fast path (XDP/TC): not built yet");
    Ok(())
}
