//! `cargo xtask bench pptp`: PPTP's data paths, in one run on the standard
//! topology, interleaved round by round.
//!
//! From a QEMU guest (the real pppd + pptp-linux) to the LAN host through
//! the gateway, TCP Mbit/s and 64-byte UDP packets/s (iperf3) for: plain
//! forwarding (no tunnel), PPTP without MPPE (the in-kernel fast path) and
//! PPTP with MPPE-128 (the daemon's path). The guest runs under TCG and
//! pptp-linux frames every packet through a pty, so the client bounds
//! those rows.
//!
//! A second table takes the client out: a generator on the internet host
//! opens its own call with the project's PPTP client (`pptp_peer`: PPTP
//! control, MS-CHAPv2, IPCP, and for the slow path MPPE-128 with the
//! call's real keys), prepares 64- or 1400-byte inner UDP packets to the
//! LAN host ahead of time, and sends them in GRE at a given rate; a bisection finds
//! the highest rate of which 99% is delivered (RFC 2544's throughput; an
//! overloaded MPPE call loses sync and ends, so "as fast as it can" would
//! measure the wreck, not the path). Every packet is
//! valid, so the slow path decrypts and delivers each to vpn0 like the fast
//! path does. Both are counted the same way, by the session's
//! `rx_packets`; the fast rows must show them in `fast_path_rx_packets`
//! too, the slow rows not.
//! Results also go to target/bench/pptp.json; a failed measurement ends
//! the run with an error.
use std::{
    io::{BufRead as _, Write as _},
    net::Ipv4Addr,
    process::Stdio,
    time::Duration,
};

use serde_json::json;
use vpn_tests::{
    bench::{self, Stats},
    gateway::Gateway,
    guest::{Guest, Site},
    native_client::add_user,
    pptp_client::{connect_script, DISCONNECT_SCRIPT},
    pptp_peer::PptpCall,
    topology::{Topology, GW_WAN, LAN_HOST},
};

const ROUNDS: usize = 3;
const SECS: u32 = 5;
const BLAST_SECS: f64 = 3.0;
/// One trial of the throughput search.
const TRIAL_SECS: f64 = 1.0;
/// A trial passes when the gateway delivered this share of what was sent.
const PASS: f64 = 0.99;
/// Prepared ahead of time, so the generator's own crypto is not measured.
const PACKETS: usize = 400_000;
/// Inner packet lengths of the generator's rows.
const LENS: [usize; 2] = [64, 1400];
const USER: &str = "bench";
const PASSWORD: &str = "bench-password-1";

/// `blast MPPE RATE LEN`: a call of its own (with MPPE-128 when MPPE is
/// 1), then TRIAL_SECS of LEN-byte inner packets prepared and sent at RATE
/// packets/s (0: as fast as it can); prints "SENT SECONDS" and keeps the
/// call until standard input closes (the counters are read meanwhile).
fn blast(args: &[String]) -> anyhow::Result<()> {
    let mppe = args.first().map(String::as_str) == Some("1");
    let rate: f64 = args.get(1).map_or(Ok(0.0), |r| r.parse())?;
    let len: usize = args.get(2).map_or(Ok(64), |l| l.parse())?;
    anyhow::ensure!((28..=1400).contains(&len), "inner length {len}");
    let gw: Ipv4Addr = GW_WAN.parse()?;
    let lan: Ipv4Addr = LAN_HOST.parse()?;
    let mut call = PptpCall::connect(gw, USER, PASSWORD, mppe, 4242)?;
    let src = call
        .ppp
        .address()
        .ok_or_else(|| anyhow::anyhow!("no address"))?;
    let mut inner = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    inner[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    inner.extend_from_slice(&src.octets());
    inner.extend_from_slice(&lan.octets());
    let sum = vpn_tests::packet::checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&sum.to_be_bytes());
    inner.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
    inner.extend_from_slice(&((len - 20) as u16).to_be_bytes());
    inner.extend_from_slice(&[0, 0]);
    inner.resize(len, 0x5a);
    let n = if rate > 0.0 {
        ((rate * TRIAL_SECS) as usize).min(PACKETS)
    } else {
        PACKETS
    };
    let packets: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let f = call.ppp.ip_frame(&inner);
            call.gre_packet(&f)
        })
        .collect();
    let pace = (rate > 0.0).then_some(rate);
    let (sent, secs) = bench::raw_send(libc::IPPROTO_GRE, gw, &packets, BLAST_SECS, false, pace)?;
    println!("{sent} {secs}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    call.hang_up()
}

fn session(gw: &Gateway) -> serde_json::Value {
    gw.sessions().first().cloned().unwrap_or_default()
}

fn counter(gw: &Gateway, field: &str) -> u64 {
    session(gw)[field].as_u64().unwrap_or(0)
}

/// One trial: a fresh call offered `rate` packets/s (0: as fast as the
/// generator can); returns (packets sent, seconds, packets the gateway
/// delivered on the call, of them on the fast path). A call that ended
/// under the load (MPPE lost sync) delivered 0.
fn trial(
    t: &Topology,
    gw: &Gateway,
    mppe: bool,
    rate: f64,
    len: usize,
) -> anyhow::Result<(u64, f64, u64, u64)> {
    let mut child = bench::Reap(
        t.inet
            .cmd(std::env::current_exe()?.to_str().unwrap_or_default())
            .args([
                "blast",
                if mppe { "1" } else { "0" },
                &format!("{rate:.0}"),
                &len.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().expect("piped")).read_line(&mut line)?;
    let mut f = line.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(sent)), Some(Ok(secs))) = (f.next(), f.next()) else {
        let status = child.0.wait()?;
        anyhow::bail!("the generator printed `{}` ({status})", line.trim());
    };
    // Its call is the only session.
    let rx = bench::settled(|| counter(gw, "rx_packets"));
    let fast = counter(gw, "fast_path_rx_packets");
    drop(child.0.stdin.take());
    let status = child.0.wait()?;
    anyhow::ensure!(status.success(), "the generator ended with {status}");
    wait_no_sessions(gw)?;
    Ok((sent as u64, secs, rx, fast))
}

/// The highest offered rate the path delivers (PASS of it, the call
/// alive), by bisection between 10,000 packets/s and what the generator
/// reaches unpaced (RFC 2544's throughput); also checks which path
/// carried the packets.
fn throughput(t: &Topology, gw: &Gateway, mppe: bool, len: usize) -> anyhow::Result<(f64, bool)> {
    let check_path = |rx: u64, fast: u64| -> anyhow::Result<()> {
        if mppe {
            anyhow::ensure!(fast == 0, "MPPE packets on the fast path ({fast} of {rx})");
        } else {
            anyhow::ensure!(
                fast * 10 >= rx * 9,
                "the fast path did not carry the generator's packets ({fast} of {rx})"
            );
        }
        Ok(())
    };
    let (sent, secs, rx, fast) = trial(t, gw, mppe, 0.0, len)?;
    check_path(rx, fast)?;
    let top = sent as f64 / secs;
    if rx as f64 >= PASS * sent as f64 {
        return Ok((top, true)); // the generator is the limit
    }
    // The floor is checked like any rate: a path that cannot carry it has
    // no throughput to report, not 10,000.
    let (mut lo, mut hi) = (10_000f64, top);
    let (sent, _, rx, fast) = trial(t, gw, mppe, lo, len)?;
    check_path(rx, fast)?;
    anyhow::ensure!(
        rx as f64 >= PASS * sent as f64,
        "{len}-byte packets: {rx} of {sent} delivered at {lo} packets/s"
    );
    while hi / lo > 1.05 {
        let mid = (lo + hi) / 2.0;
        let (sent, _, rx, fast) = trial(t, gw, mppe, mid, len)?;
        check_path(rx, fast)?;
        if rx as f64 >= PASS * sent as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((bench::measured("throughput", lo)?, false))
}

#[derive(Default)]
struct Rows {
    plain: (Vec<f64>, Vec<f64>),
    fast: (Vec<f64>, Vec<f64>),
    slow: (Vec<f64>, Vec<f64>),
    /// The generator's throughput, packets/s, at 64 and 1400 bytes.
    fast_gen: [Vec<f64>; 2],
    slow_gen: [Vec<f64>; 2],
    /// A path delivered all the generator could send: its row is a floor.
    capped: (bool, bool),
}

fn push(to: &mut (Vec<f64>, Vec<f64>), (mbit, pps): (f64, f64)) -> anyhow::Result<()> {
    to.0.push(bench::measured("TCP Mbit/s", mbit)?);
    to.1.push(bench::measured("UDP packets/s", pps)?);
    Ok(())
}

fn guest_round(t: &Topology, gw: &Gateway, g: &mut Guest, r: &mut Rows) -> anyhow::Result<()> {
    let connect = Duration::from_secs(60);
    eprintln!("guest round {}", r.plain.0.len() + 1);
    push(
        &mut r.plain,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;
    g.must(&connect_script(USER, PASSWORD, false), connect);
    push(
        &mut r.fast,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
    g.must(&connect_script(USER, PASSWORD, true), connect);
    push(
        &mut r.slow,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
    wait_no_sessions(gw)
}

fn generator_round(t: &Topology, gw: &Gateway, r: &mut Rows) -> anyhow::Result<()> {
    eprintln!("generator round {}", r.fast_gen[0].len() + 1);
    for (i, len) in LENS.into_iter().enumerate() {
        let (fast, fast_capped) = throughput(t, gw, false, len)?;
        let (slow, slow_capped) = throughput(t, gw, true, len)?;
        r.fast_gen[i].push(fast);
        r.slow_gen[i].push(slow);
        r.capped.0 |= fast_capped;
        r.capped.1 |= slow_capped;
    }
    Ok(())
}

fn wait_no_sessions(gw: &Gateway) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !gw.sessions().is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "a session outlived its call"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        return blast(&args[2..]);
    }
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[pptp]\nenabled = true\nrequire_mppe = false\n");
    add_user(&gw, USER, PASSWORD, None);
    let mut r = Rows::default();
    // The generator's rounds first, before the guest exists.
    for _ in 0..ROUNDS {
        generator_round(&t, &gw, &mut r)?;
    }
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    for _ in 0..ROUNDS {
        guest_round(&t, &gw, &mut g, &mut r)?;
    }
    let s = |what: &str, v: &[f64]| Stats::of(what, v);
    let rows = [
        (
            "plain forwarding, no tunnel",
            s("plain TCP", &r.plain.0)?,
            s("plain UDP", &r.plain.1)?,
        ),
        (
            "PPTP fast path (no MPPE, in kernel)",
            s("fast TCP", &r.fast.0)?,
            s("fast UDP", &r.fast.1)?,
        ),
        (
            "PPTP slow path (MPPE-128, daemon)",
            s("slow TCP", &r.slow.0)?,
            s("slow UDP", &r.slow.1)?,
        ),
    ];
    let gen = |what: &str, v: &[Vec<f64>; 2]| -> anyhow::Result<[Stats; 2]> {
        Ok([s(what, &v[0])?, s(what, &v[1])?])
    };
    let fast_gen = gen("fast path generator", &r.fast_gen)?;
    let slow_gen = gen("slow path generator", &r.slow_gen)?;

    println!(
        "PPTP (QEMU guest with pppd/pptp-linux -> LAN host through the gateway; iperf3, {ROUNDS} interleaved rounds of {SECS} s; median [min-max])"
    );
    println!(
        "  {:<36} {:>22} {:>26}",
        "path", "TCP Mbit/s", "UDP 64 B pkt/s"
    );
    for (name, tcp, udp) in &rows {
        println!("  {name:<36} {:>22} {:>26}", tcp.show(0), udp.show(0));
    }
    println!(
        "  fast / slow: {:.2} (pkt/s), {:.2} (TCP)",
        bench::ratio(&rows[1].2, &rows[2].2),
        bench::ratio(&rows[1].1, &rows[2].1)
    );
    println!(
        "gateway only (the project's PPTP client on the internet host; throughput: the highest offered rate of which {:.0}% reaches vpn0, {TRIAL_SECS} s trials; inner UDP of {LENS:?} bytes; session rx_packets)",
        PASS * 100.0
    );
    println!(
        "  {:<40} {:>24} {:>24} {:>14}",
        "path", "64 B pkt/s", "1400 B pkt/s", "1400 B Mbit/s"
    );
    for (name, g) in [
        ("fast path (TC decap into vpn0)", &fast_gen),
        ("slow path (daemon: GRE, PPP, MPPE RC4)", &slow_gen),
    ] {
        println!(
            "  {name:<40} {:>24} {:>24} {:>14.0}",
            g[0].show(0),
            g[1].show(0),
            g[1].median * 1400.0 * 8.0 / 1e6
        );
    }
    for (capped, name) in [(r.capped.0, "fast path"), (r.capped.1, "slow path")] {
        if capped {
            println!(
                "  {name}: delivered all the generator sent in some round: its figures are a floor"
            );
        }
    }
    println!(
        "  fast / slow: {:.2} at 64 B, {:.2} at 1400 B  (target >= 3)",
        bench::ratio(&fast_gen[0], &slow_gen[0]),
        bench::ratio(&fast_gen[1], &slow_gen[1])
    );
    let row_json = |(n, tcp, udp): &(&str, Stats, Stats)| {
        (
            n.to_string(),
            json!({"tcp_mbit_per_s": tcp.json(), "udp_64_packets_per_s": udp.json()}),
        )
    };
    bench::write_json(
        "pptp",
        json!({
            "rounds": ROUNDS,
            "guest": rows.iter().map(row_json).collect::<serde_json::Map<_, _>>(),
            "generator_packets_per_s": {
                "64": {"fast_path": fast_gen[0].json(), "mppe_128": slow_gen[0].json()},
                "1400": {"fast_path": fast_gen[1].json(), "mppe_128": slow_gen[1].json()},
            },
            "generator_limited": {"fast_path": r.capped.0, "mppe_128": r.capped.1},
        }),
    )?;
    Ok(())
}
