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
//! sends the session's GRE as fast as it can, with the client's address,
//! call ID, fresh sequence numbers and 64-byte inner UDP to the LAN host.
//! For MPPE it encrypts each packet with the session's real keys (derived,
//! as the client does, from the password and the NT-Response the guest's
//! pppd logged), so every packet is decrypted and delivered to vpn0. Both
//! paths are counted the same way: the session's `rx_packets`; the fast
//! rows must show it in `fast_path_rx_packets` too, the slow rows not.
//! Results also go to target/bench/pptp.json; a failed measurement ends
//! the run with an error.
use std::{net::Ipv4Addr, time::Duration};

use serde_json::json;
use vpn_proto::ppp::{
    mppe::{Mppe, Strength},
    mschap::{self, NtHash},
};
use vpn_tests::{
    bench::{self, Stats},
    gateway::Gateway,
    guest::{Guest, Site},
    native_client::add_user,
    pptp_client::{connect_script, DISCONNECT_SCRIPT},
    topology::{Topology, GW_WAN, LAN_HOST},
};

const ROUNDS: usize = 3;
const SECS: u32 = 5;
const BLAST_SECS: f64 = 3.0;
/// Prepared ahead of time, so the generator's own crypto is not measured.
const PACKETS: usize = 400_000;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password-1";
/// The guest's address on the internet side (Site::Internet(1)).
const CLIENT: &str = "198.18.21.2";

/// `blast CALL INNER_SRC [NT_RESPONSE_HEX FIRST_CCOUNT]`: GRE for one call
/// from the client's address; with MPPE arguments, encrypted.
fn blast(args: &[String]) -> anyhow::Result<()> {
    let call: u16 = args[0].parse()?;
    let inner_src: Ipv4Addr = args[1].parse()?;
    let mut mppe = match args.get(2) {
        Some(hex) => {
            let r = decode_hex(hex)?;
            let nt: [u8; 24] = r
                .try_into()
                .map_err(|_| anyhow::anyhow!("an NT-Response is 24 bytes"))?;
            let master = mschap::master_key(&NtHash::of_password(PASSWORD), &nt);
            let (mut send, _) = Mppe::client_pair(&master, Strength::Bits128, false);
            // Catch up with what the client already sent on this call.
            let first: usize = args[3].parse()?;
            let mut scratch = Vec::new();
            for _ in 0..first {
                send.encrypt(&[0x00, 0x21], &mut scratch);
            }
            Some(send)
        }
        None => None,
    };
    let src: Ipv4Addr = CLIENT.parse()?;
    let (gw, lan): (Ipv4Addr, Ipv4Addr) = (GW_WAN.parse()?, LAN_HOST.parse()?);
    let mut inner = vec![0x45, 0, 0, 92, 0, 0, 0x40, 0, 64, 17, 0, 0];
    inner.extend_from_slice(&inner_src.octets());
    inner.extend_from_slice(&lan.octets());
    let sum = vpn_tests::packet::checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&sum.to_be_bytes());
    inner.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 72, 0, 0]);
    inner.resize(92, 0x5a);
    let mut body = Vec::new();
    let packets: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| {
            let ppp: Vec<u8> = match mppe.as_mut() {
                Some(m) => {
                    body.clear();
                    m.encrypt_parts(&[&[0x00, 0x21], &inner], &mut body);
                    [&[0xff, 0x03, 0x00, 0xfd][..], &body].concat()
                }
                None => [&[0xff, 0x03, 0x00, 0x21][..], &inner].concat(),
            };
            let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
            p.extend_from_slice(&src.octets());
            p.extend_from_slice(&gw.octets());
            let total = (20 + 12 + ppp.len()) as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0x30, 0x01, 0x88, 0x0b]);
            p.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
            p.extend_from_slice(&call.to_be_bytes());
            p.extend_from_slice(&(1_000_000u32 + i as u32).to_be_bytes());
            p.extend_from_slice(&ppp);
            p
        })
        .collect();
    let (sent, secs) = bench::raw_send(libc::IPPROTO_RAW, gw, &packets, BLAST_SECS, false)?;
    println!("{sent} {secs}");
    Ok(())
}

fn decode_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(Into::into))
        .collect()
}

/// The call ID the gateway gave the latest call (from its log line).
fn call_id(gw: &Gateway) -> anyhow::Result<String> {
    gw.log()
        .lines()
        .rev()
        .find_map(|l| l.split("pptp: call ").nth(1))
        .and_then(|r| r.split(' ').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no call line in the gateway log"))
}

/// The NT-Response (hex) of the MS-CHAPv2 Response pppd logged with
/// `debug`: peer challenge (16), reserved (8), NT-Response (24), flags.
fn nt_response(pppd_log: &str) -> anyhow::Result<String> {
    let hex = pppd_log
        .lines()
        .find_map(|l| l.split("sent [CHAP Response id=").nth(1))
        .and_then(|r| r.split('<').nth(1))
        .and_then(|r| r.split('>').next())
        .ok_or_else(|| anyhow::anyhow!("no CHAP Response in pppd's log:\n{pppd_log}"))?;
    anyhow::ensure!(hex.len() == 98, "a 49-byte MS-CHAPv2 response: {hex}");
    Ok(hex[48..96].to_string())
}

fn session(gw: &Gateway) -> serde_json::Value {
    gw.sessions().first().cloned().unwrap_or_default()
}

fn counter(gw: &Gateway, field: &str) -> u64 {
    session(gw)[field].as_u64().unwrap_or(0)
}

/// Packets/s the gateway delivered from the generator (the session's
/// `rx_packets`), and the fast path's share of them.
fn gateway_rate(t: &Topology, gw: &Gateway, args: &[String]) -> anyhow::Result<(f64, u64, u64)> {
    let (rx0, fast0) = (
        counter(gw, "rx_packets"),
        counter(gw, "fast_path_rx_packets"),
    );
    let out = t
        .inet
        .cmd(std::env::current_exe()?.to_str().unwrap_or_default())
        .arg("blast")
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "generator ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Preparing the packets is not timed: the generator reports the
    // seconds from its first send to its last.
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.split_whitespace().nth(1).unwrap_or("").parse()?;
    let rx = bench::settled(|| counter(gw, "rx_packets")) - rx0;
    let fast = counter(gw, "fast_path_rx_packets") - fast0;
    let rate = bench::measured("gateway rate", rx as f64 / secs).map_err(|e| {
        let log = gw.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        e.context(format!(
            "generator said `{}`; sessions: {}; the gateway's log ends:\n{}",
            text.trim(),
            String::from_utf8_lossy(&gw.ctl(&["sessions", "--json"]).stdout),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    })?;
    Ok((rate, rx, fast))
}

fn inner_address(g: &mut Guest) -> String {
    g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}' | cut -d/ -f1",
        Duration::from_secs(10),
    )
    .trim()
    .to_string()
}

#[derive(Default)]
struct Rows {
    plain: (Vec<f64>, Vec<f64>),
    fast: (Vec<f64>, Vec<f64>),
    slow: (Vec<f64>, Vec<f64>),
    fast_gen: Vec<f64>,
    slow_gen: Vec<f64>,
}

fn push(to: &mut (Vec<f64>, Vec<f64>), (mbit, pps): (f64, f64)) -> anyhow::Result<()> {
    to.0.push(bench::measured("TCP Mbit/s", mbit)?);
    to.1.push(bench::measured("UDP packets/s", pps)?);
    Ok(())
}

fn round(t: &Topology, gw: &Gateway, g: &mut Guest, r: &mut Rows) -> anyhow::Result<()> {
    let connect = Duration::from_secs(60);
    eprintln!("round {}", r.fast_gen.len() + 1);
    push(
        &mut r.plain,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;

    // Without MPPE: the kernel's path, then the generator on it.
    g.must(&connect_script(USER, PASSWORD, false), connect);
    push(
        &mut r.fast,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;
    let inner = inner_address(g);
    let (rate, rx, fast) = gateway_rate(t, gw, &[call_id(gw)?, inner])?;
    anyhow::ensure!(
        fast * 10 >= rx * 9,
        "the fast path did not carry the generator's packets ({fast} of {rx})"
    );
    r.fast_gen.push(rate);
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));

    // With MPPE: a fresh call for the generator, whose keys and coherency
    // count then are the client's; the guest's own traffic on another call.
    let log = g.must(&connect_script(USER, PASSWORD, true), connect);
    anyhow::ensure!(
        log.contains("stateless"),
        "the generator speaks stateless MPPE only; pppd agreed:\n{log}"
    );
    let inner = inner_address(g);
    let first = counter(gw, "rx_packets");
    let args = [call_id(gw)?, inner, nt_response(&log)?, first.to_string()];
    let (rate, rx, fast) = gateway_rate(t, gw, &args)?;
    anyhow::ensure!(fast == 0, "MPPE packets on the fast path ({fast} of {rx})");
    r.slow_gen.push(rate);
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
    g.must(&connect_script(USER, PASSWORD, true), connect);
    push(
        &mut r.slow,
        vpn_tests::guest_iperf::guest_to_lan(t, g, SECS),
    )?;
    g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
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
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    anyhow::ensure!(g.addr() == CLIENT, "the guest is at {}", g.addr());
    // The baseline needs the LAN routed from the internet side (no NAT, no tunnel).
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    let mut r = Rows::default();
    for _ in 0..ROUNDS {
        round(&t, &gw, &mut g, &mut r)?;
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
    let fast_gen = s("fast path generator", &r.fast_gen)?;
    let slow_gen = s("slow path generator", &r.slow_gen)?;

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
        "gateway only (a GRE generator on the internet host, {BLAST_SECS} s, 64-byte inner UDP delivered to vpn0; session rx_packets)"
    );
    println!(
        "  fast path (TC decap into vpn0):          {} pkt/s",
        fast_gen.show(0)
    );
    println!(
        "  slow path (daemon: GRE, PPP, MPPE RC4):  {} pkt/s",
        slow_gen.show(0)
    );
    println!(
        "  fast / slow:                             {:.2}  (target >= 3)",
        bench::ratio(&fast_gen, &slow_gen)
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
            "generator_packets_per_s": {"fast_path": fast_gen.json(), "mppe_128": slow_gen.json()},
        }),
    )?;
    Ok(())
}
