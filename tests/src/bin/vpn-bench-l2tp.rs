//! `cargo xtask bench l2tp`: plain L2TP's data paths, in one run on the
//! standard topology, from a QEMU guest (the real xl2tpd + pppd, kernel
//! mode) to the LAN host through the gateway:
//!
//! - plain forwarding, no tunnel (the baseline);
//! - L2TP on the in-kernel path (TC decap/encap);
//! - L2TP on the daemon's userspace path (`[l2tp] fast_path = false`);
//!
//! each as TCP Mbit/s and 64-byte UDP packets/s (iperf3), interleaved
//! round by round (median and spread), with ratios. The
//! guest runs under TCG, so it bounds those rows; a second table takes the
//! client out: a generator on the internet host sends the session's L2TP
//! data (the client's address and port, 64-byte inner UDP) as fast as it
//! can, and the gateway's counters give packets/s handled by each path.
//! Exits non-zero when a measurement failed or the counters show that the
//! fast path did not carry the fast rows. Results also go to
//! target/bench/l2tp.json.
use std::{net::Ipv4Addr, time::Duration};

use vpn_tests::{
    bench::{self, Stats},
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST},
};

const SECS: u32 = 5;
const BLAST_SECS: f64 = 3.0;
const ROUNDS: usize = 3;
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
    let gw: Ipv4Addr = GW_WAN.parse()?;
    let lan: Ipv4Addr = LAN_HOST.parse()?;
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
    let (sent, secs) = bench::raw_send(libc::IPPROTO_RAW, gw, &[p], BLAST_SECS, true, None)?;
    println!("{sent} {secs}");
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
    let out = t
        .inet
        .cmd(std::env::current_exe()?.to_str().unwrap_or_default())
        .args(["blast", &port, &tunnel, &session_id, inner])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "generator ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.split_whitespace().nth(1).unwrap_or("").parse()?;
    let handled = bench::settled(|| session(gw)[field].as_u64().unwrap_or(0)) - before;
    bench::measured(&format!("the gateway's `{field}`"), handled as f64 / secs)
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
    anyhow::ensure!(g.addr() == CLIENT, "the guest is at {}", g.addr());
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    // Interleaved: each round measures every path once.
    let mut v: [Vec<f64>; 8] = Default::default();
    for _ in 0..ROUNDS {
        let plain = {
            let _gw = Gateway::start(&t.gw, "");
            measure(&t, &mut g)?
        };
        let (fast, fast_rate) = run_path(&t, &mut g, true)?;
        let (slow, slow_rate) = run_path(&t, &mut g, false)?;
        for (i, x) in [
            plain.0, plain.1, fast.0, fast.1, slow.0, slow.1, fast_rate, slow_rate,
        ]
        .into_iter()
        .enumerate()
        {
            v[i].push(x);
        }
    }
    let names = [
        "plain TCP",
        "plain UDP",
        "fast TCP",
        "fast UDP",
        "slow TCP",
        "slow UDP",
        "fast generator",
        "slow generator",
    ];
    let st: Vec<Stats> = names
        .iter()
        .zip(&v)
        .map(|(n, x)| Stats::of(n, x))
        .collect::<anyhow::Result<_>>()?;

    println!(
        "L2TP (QEMU guest with xl2tpd/pppd -> LAN host through the gateway; iperf3, {ROUNDS} interleaved rounds of {SECS} s; median [min-max])"
    );
    println!(
        "  {:<36} {:>22} {:>26}",
        "path", "TCP Mbit/s", "UDP 64 B pkt/s"
    );
    for (i, name) in [
        "plain forwarding, no tunnel",
        "L2TP fast path (in kernel)",
        "L2TP slow path (daemon)",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "  {name:<36} {:>22} {:>26}",
            st[2 * i].show(0),
            st[2 * i + 1].show(0)
        );
    }
    println!(
        "  fast / slow: {:.2} (pkt/s), {:.2} (TCP)",
        bench::ratio(&st[3], &st[5]),
        bench::ratio(&st[2], &st[4])
    );
    println!(
        "gateway only (an L2TP generator on the internet host, {BLAST_SECS} s, 64-byte inner UDP; session counters)"
    );
    println!(
        "  fast path (TC decap into vpn0):          {} pkt/s",
        st[6].show(0)
    );
    println!(
        "  slow path (daemon: UDP, L2TP, PPP):      {} pkt/s",
        st[7].show(0)
    );
    println!(
        "  fast / slow:                             {:.2}",
        bench::ratio(&st[6], &st[7])
    );
    let rows: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&st)
        .map(|(n, s)| (n.to_string(), s.json()))
        .collect();
    bench::write_json("l2tp", serde_json::json!({"rounds": ROUNDS, "rows": rows}))?;
    Ok(())
}
