//! `cargo xtask bench pptp`: PPTP data paths, in one run on the standard
//! topology, from a QEMU guest (the real pppd + pptp-linux client) to the
//! LAN host through the gateway:
//!
//! - plain forwarding, no tunnel (the baseline);
//! - PPTP without MPPE: the in-kernel fast path (TC decap/encap);
//! - PPTP with MPPE-128: the daemon's userspace path (RC4);
//!
//! each as TCP Mbit/s and 64-byte UDP packets/s (iperf3), with ratios. The
//! guest runs under TCG and pptp-linux frames every packet through a pty, so
//! the client bounds those rows. A second table takes the client out: a
//! generator on the internet host sends the session's GRE (with the client's
//! source address, fresh sequence numbers and, for MPPE, fresh coherency
//! counts) as fast as it can, and the gateway's counters give packets/s
//! handled by each path.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    native_client::add_user,
    pptp_client::{connect_script, DISCONNECT_SCRIPT},
    topology::{Topology, GW_WAN, LAN_HOST},
};

const SECS: u32 = 5;

/// (TCP Mbit/s, UDP packets/s) from the guest to the LAN host.
fn measure(t: &Topology, g: &mut Guest) -> (f64, f64) {
    vpn_tests::guest_iperf::guest_to_lan(t, g, SECS)
}

const BLAST_SECS: u64 = 3;

/// `blast SRC CALL_ID INNER_SRC MPPE`: GRE for one call from the client's
/// address, for BLAST_SECS; 64-byte inner UDP to the LAN host.
fn blast(args: &[String]) -> anyhow::Result<()> {
    let src: Ipv4Addr = args[0].parse()?;
    let call: u16 = args[1].parse()?;
    let inner_src: Ipv4Addr = args[2].parse()?;
    let mppe = args[3] == "1";
    // SAFETY: plain socket calls on an fd this function owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    anyhow::ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let gw: Ipv4Addr = GW_WAN.parse()?;
    let lan: Ipv4Addr = LAN_HOST.parse()?;
    let mut dst: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    dst.sin_family = libc::AF_INET as u16;
    dst.sin_addr.s_addr = u32::from_ne_bytes(gw.octets());
    let end = Instant::now() + Duration::from_secs(BLAST_SECS);
    let (mut seq, mut cc) = (1_000_000u32, 0u16);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            let mut inner = vec![0x45, 0, 0, 92, 0, 0, 0x40, 0, 64, 17, 0, 0];
            inner.extend_from_slice(&inner_src.octets());
            inner.extend_from_slice(&lan.octets());
            inner.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 72, 0, 0]);
            inner.resize(92, 0x5a);
            let ppp: Vec<u8> = if mppe {
                cc = (cc + 1) % 4096;
                let h = (cc | 0x9000).to_be_bytes(); // flushed + encrypted
                [&[0xff, 0x03, 0x00, 0xfd][..], &h, &inner].concat()
            } else {
                [&[0xff, 0x03, 0x00, 0x21][..], &inner].concat()
            };
            let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
            p.extend_from_slice(&src.octets());
            p.extend_from_slice(&gw.octets());
            let total = (20 + 12 + ppp.len()) as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0x30, 0x01, 0x88, 0x0b]);
            p.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
            p.extend_from_slice(&call.to_be_bytes());
            p.extend_from_slice(&seq.to_be_bytes());
            seq = seq.wrapping_add(1);
            p.extend_from_slice(&ppp);
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

/// The call ID the gateway gave the session (from its log line).
fn call_id(gw: &Gateway, nth: usize) -> String {
    gw.log()
        .lines()
        .filter_map(|l| l.split("pptp: call ").nth(1))
        .nth(nth)
        .and_then(|r| r.split(' ').next())
        .expect("call line in the gateway log")
        .to_string()
}

/// Packets/s the gateway handled for a blasted session: `counter` is where
/// they show up (`fast_rx` in counters, or `daemon_pptp_ppp_dropped` in drops).
fn gateway_rate(
    t: &Topology,
    gw: &Gateway,
    call: &str,
    inner: &str,
    mppe: bool,
    list: &str,
    counter: &str,
) -> f64 {
    let before = gw.count(list, counter);
    let t0 = Instant::now();
    let out = t
        .inet
        .cmd(std::env::current_exe().unwrap().to_str().unwrap())
        .args([
            "blast",
            "198.18.21.2",
            call,
            inner,
            if mppe { "1" } else { "0" },
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Let the daemon drain its socket before reading the counter.
    std::thread::sleep(Duration::from_millis(300));
    let handled = gw.count(list, counter) - before;
    handled as f64 / t0.elapsed().as_secs_f64().min(BLAST_SECS as f64 + 0.3)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        return blast(&args[2..]);
    }
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[pptp]\nenabled = true\nrequire_mppe = false\n");
    add_user(&gw, "bench", "bench-password-1", None);
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");

    let plain = measure(&t, &mut g);
    g.must(
        &connect_script("bench", "bench-password-1", false),
        Duration::from_secs(60),
    );
    let clear = measure(&t, &mut g);
    let inner = g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}'",
        Duration::from_secs(10),
    );
    let inner = inner.trim().to_string();
    let fast_rate = gateway_rate(
        &t,
        &gw,
        &call_id(&gw, 0),
        &inner,
        false,
        "counters",
        "fast_rx",
    );
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
    g.must(
        &connect_script("bench", "bench-password-1", true),
        Duration::from_secs(60),
    );
    let mppe = measure(&t, &mut g);
    let inner = g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}'",
        Duration::from_secs(10),
    );
    let slow_rate = gateway_rate(
        &t,
        &gw,
        &call_id(&gw, 1),
        inner.trim(),
        true,
        "drops",
        "daemon_pptp_ppp_dropped",
    );
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));

    println!("PPTP (QEMU guest with pppd/pptp-linux -> LAN host through the gateway; iperf3, {SECS} s each)");
    println!("  path                                  TCP Mbit/s    UDP 64 B pkt/s");
    for (name, (m, p)) in [
        ("plain forwarding, no tunnel", plain),
        ("PPTP fast path (no MPPE, in kernel)", clear),
        ("PPTP slow path (MPPE-128, daemon)", mppe),
    ] {
        println!("  {name:<36} {m:>11.0} {p:>17.0}");
    }
    println!(
        "  fast / slow: {:.2} (pkt/s), {:.2} (TCP)   target >= 3 pkt/s",
        clear.1 / mppe.1,
        clear.0 / mppe.0
    );
    println!(
        "  fast / plain: {:.2} (pkt/s), {:.2} (TCP)",
        clear.1 / plain.1,
        clear.0 / plain.0
    );
    println!(
        "gateway only (a GRE generator on the internet host, {BLAST_SECS} s, 64-byte inner UDP)"
    );
    println!("  fast path (TC decap into vpn0):          {fast_rate:>12.0} pkt/s");
    println!("  slow path (daemon: GRE, PPP, MPPE RC4):  {slow_rate:>12.0} pkt/s");
    println!(
        "  fast / slow:                             {:>12.2}  (target >= 3)",
        fast_rate / slow_rate
    );
    Ok(())
}
