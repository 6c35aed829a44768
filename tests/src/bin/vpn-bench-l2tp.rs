//! `cargo xtask bench l2tp`: plain L2TP's data paths, in one run on the
//! standard topology, from a QEMU guest (the real xl2tpd + pppd, kernel
//! mode) to the LAN host through the gateway:
//!
//! - plain forwarding, no tunnel (the baseline);
//! - L2TP on the in-kernel path (TC decap/encap);
//! - L2TP on the daemon's userspace path (`[l2tp] fast_path = false`);
//!
//! each as TCP Mbit/s and 64-byte UDP packets/s (iperf3), with ratios. The
//! guest runs under TCG, so it bounds those rows; a second table takes the
//! client out: a generator on the internet host sends the session's L2TP
//! data (the client's address and port, 64-byte inner UDP) as fast as it
//! can, and the gateway's counters give packets/s handled by each path.
//! Exits non-zero when a measurement failed or the counters show that the
//! fast path did not carry the fast rows.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST},
};

const SECS: u32 = 5;
const BLAST_SECS: u64 = 3;
const CLIENT: &str = "198.18.21.2";

/// (TCP Mbit/s, UDP packets/s) from the guest to the LAN host.
fn measure(t: &Topology, g: &mut Guest) -> anyhow::Result<(f64, f64)> {
    let (mbit, pps) = vpn_tests::guest_iperf::guest_to_lan(t, g, SECS);
    anyhow::ensure!(
        mbit > 0.0 && pps > 0.0,
        "a measurement failed: {mbit} Mbit/s, {pps} pkt/s"
    );
    Ok((mbit, pps))
}

/// `blast SRC_PORT TUNNEL SESSION INNER_SRC`: L2TP data for one session
/// from the client's address, for BLAST_SECS; 64-byte inner UDP to the LAN host.
fn blast(args: &[String]) -> anyhow::Result<()> {
    let port: u16 = args[0].parse()?;
    let tunnel: u16 = args[1].parse()?;
    let session: u16 = args[2].parse()?;
    let inner_src: Ipv4Addr = args[3].parse()?;
    let src: Ipv4Addr = CLIENT.parse()?;
    // SAFETY: plain socket calls on an fd this function owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    anyhow::ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let gw: Ipv4Addr = GW_WAN.parse()?;
    let lan: Ipv4Addr = LAN_HOST.parse()?;
    // SAFETY: plain old data, zero is valid.
    let mut dst: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    dst.sin_family = libc::AF_INET as u16;
    dst.sin_addr.s_addr = u32::from_ne_bytes(gw.octets());
    let mut inner = vec![0x45, 0, 0, 92, 0, 0, 0x40, 0, 64, 17, 0, 0];
    inner.extend_from_slice(&inner_src.octets());
    inner.extend_from_slice(&lan.octets());
    inner.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 72, 0, 0]);
    inner.resize(92, 0x5a);
    let mut l2tp = vec![0x00, 0x02];
    l2tp.extend_from_slice(&tunnel.to_be_bytes());
    l2tp.extend_from_slice(&session.to_be_bytes());
    l2tp.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    l2tp.extend_from_slice(&inner);
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&gw.octets());
    p[2..4].copy_from_slice(&((20 + 8 + l2tp.len()) as u16).to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&1701u16.to_be_bytes());
    p.extend_from_slice(&((8 + l2tp.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&l2tp);
    let end = Instant::now() + Duration::from_secs(BLAST_SECS);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            // SAFETY: valid buffer and address for the call.
            let n = unsafe {
                libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            sent += u64::from(n > 0);
        }
    }
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    println!("{sent}");
    Ok(())
}

fn session(gw: &Gateway) -> serde_json::Value {
    let out = gw.ctl(&["sessions", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rows[0].clone()
}

/// (client's port, our tunnel ID, our session ID) from the gateway's log.
fn ids(gw: &Gateway) -> anyhow::Result<(String, String, String)> {
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("l2tp: session") && l.contains("(call "))
        .ok_or_else(|| anyhow::anyhow!("no session line in the gateway log"))?;
    let word = |after: &str| {
        line.split(after)
            .nth(1)
            .and_then(|r| r.split([' ', ',', ')']).next())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no `{after}` in {line}"))
    };
    let port = word(&format!("{CLIENT}:"))?;
    Ok((port, word("in tunnel ")?, word("(call ")?))
}

/// Packets/s the gateway handled from the generator: the session's
/// `field` in `sessions --json` (fast-path or all received packets).
fn gateway_rate(t: &Topology, gw: &Gateway, inner: &str, field: &str) -> anyhow::Result<f64> {
    let (port, tunnel, session_id) = ids(gw)?;
    let before = session(gw)[field].as_u64().unwrap_or(0);
    let t0 = Instant::now();
    let out = t
        .inet
        .cmd(std::env::current_exe()?.to_str().unwrap_or_default())
        .args(["blast", &port, &tunnel, &session_id, inner])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Let the daemon drain its socket before reading the counter.
    std::thread::sleep(Duration::from_millis(300));
    let handled = session(gw)[field].as_u64().unwrap_or(0) - before;
    anyhow::ensure!(handled > 0, "the gateway counted nothing in `{field}`");
    Ok(handled as f64 / t0.elapsed().as_secs_f64().min(BLAST_SECS as f64 + 0.3))
}

/// One gateway: connect, measure, blast; returns (guest rows, gateway rate).
fn run_path(t: &Topology, g: &mut Guest, fast: bool) -> anyhow::Result<((f64, f64), f64)> {
    let gw = Gateway::start(
        &t.gw,
        &format!("[l2tp]\nallow_plain = true\nfast_path = {fast}\n"),
    );
    add_user(&gw, "bench", "bench-password-1", None);
    let client = L2tpClient {
        user: "bench",
        password: "bench-password-1",
        secret: None,
        ipsec: None,
    };
    g.must(&client.connect_script(60), Duration::from_secs(90));
    let rows = measure(t, g)?;
    let row = session(&gw);
    let (fast_rx, rx) = (
        row["fast_path_rx_packets"].as_u64().unwrap_or(0),
        row["rx_packets"].as_u64().unwrap_or(0),
    );
    if fast {
        anyhow::ensure!(
            row["fast_path"] == true && fast_rx * 10 >= rx * 9 && fast_rx > 1000,
            "the fast path did not carry the traffic: {row}"
        );
    } else {
        anyhow::ensure!(
            fast_rx == 0 && rx > 1000,
            "the daemon did not carry the traffic: {row}"
        );
    }
    let inner = g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}'",
        Duration::from_secs(10),
    );
    let field = if fast {
        "fast_path_rx_packets"
    } else {
        "rx_packets"
    };
    let rate = gateway_rate(t, &gw, inner.trim(), field)?;
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
    Ok((rows, rate))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        return blast(&args[2..]);
    }
    let t = Topology::build();
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    let plain = {
        let _gw = Gateway::start(&t.gw, "");
        measure(&t, &mut g)?
    };
    let (fast, fast_rate) = run_path(&t, &mut g, true)?;
    let (slow, slow_rate) = run_path(&t, &mut g, false)?;

    println!(
        "L2TP (QEMU guest with xl2tpd/pppd -> LAN host through the gateway; iperf3, {SECS} s each)"
    );
    println!("  path                                  TCP Mbit/s    UDP 64 B pkt/s");
    for (name, (m, p)) in [
        ("plain forwarding, no tunnel", plain),
        ("L2TP fast path (in kernel)", fast),
        ("L2TP slow path (daemon)", slow),
    ] {
        println!("  {name:<36} {m:>11.0} {p:>17.0}");
    }
    println!(
        "  fast / slow: {:.2} (pkt/s), {:.2} (TCP)",
        fast.1 / slow.1,
        fast.0 / slow.0
    );
    println!(
        "  fast / plain: {:.2} (pkt/s), {:.2} (TCP)",
        fast.1 / plain.1,
        fast.0 / plain.0
    );
    println!(
        "gateway only (an L2TP generator on the internet host, {BLAST_SECS} s, 64-byte inner UDP)"
    );
    println!("  fast path (TC decap into vpn0):          {fast_rate:>12.0} pkt/s");
    println!("  slow path (daemon: UDP, L2TP, PPP):      {slow_rate:>12.0} pkt/s");
    println!(
        "  fast / slow:                             {:>12.2}",
        fast_rate / slow_rate
    );
    Ok(())
}
