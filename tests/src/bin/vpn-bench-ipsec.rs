//! `cargo xtask bench ipsec`: L2TP/IPsec's userspace data path, in one run
//! on the standard topology.
//!
//! From a QEMU guest (strongSwan + xl2tpd + pppd, raw ESP, no NAT) to the
//! LAN host through the gateway, TCP Mbit/s and 64-byte UDP packets/s
//! (iperf3) for: plain forwarding (no tunnel), plain L2TP on the daemon's
//! path (the same L2TP/PPP work without crypto), and L2TP/IPsec with
//! AES-CBC-128/HMAC-SHA1-96 and with AES-GCM-128. The guest runs under TCG
//! and bounds those rows, so a second table takes the client out: a
//! generator on the internet host seals the session's ESP itself, with the
//! keys the guest's kernel holds (`ip xfrm state`), and sends it as fast as
//! it can; the session's counters give the packets/s and Mbit/s the
//! gateway's one IPsec worker (one core) decrypted and delivered, for 64-
//! and 1400-byte inner packets. Rounds interleave every path (median and
//! spread); results also go to target/bench/ipsec.json. Exits non-zero
//! when a measurement failed.
use std::{net::Ipv4Addr, time::Duration};

use vpn_proto::esp::{EspCipher, EspInteg, EspTransform, Outbound, NEXT_UDP};
use vpn_tests::{
    bench::{self, Stats},
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{IpsecProfile, L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST},
};

const SECS: u32 = 5;
const BLAST_SECS: f64 = 3.0;
/// Sealed ahead of time: about 40 MB at 64 bytes, 150 MB at 1400.
fn packets(len: usize) -> u32 {
    if len > 200 {
        100_000
    } else {
        300_000
    }
}

fn measure(t: &Topology, g: &mut Guest) -> anyhow::Result<(f64, f64)> {
    let (mbit, pps) = vpn_tests::guest_iperf::guest_to_lan(t, g, SECS);
    anyhow::ensure!(
        mbit > 0.0 && pps > 0.0,
        "a measurement failed: {mbit} Mbit/s, {pps} pkt/s"
    );
    Ok((mbit, pps))
}

fn session(gw: &Gateway) -> serde_json::Value {
    gw.sessions().first().cloned().unwrap_or_default()
}

/// (our tunnel ID, our session ID) from the gateway's log.
fn ids(gw: &Gateway) -> anyhow::Result<(u16, u16)> {
    let log = gw.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("l2tp: session") && l.contains("(call "))
        .ok_or_else(|| anyhow::anyhow!("no session line in the gateway log"))?;
    let word = |after: &str| -> anyhow::Result<u16> {
        Ok(line
            .split(after)
            .nth(1)
            .and_then(|r| r.split([' ', ',', ')']).next())
            .ok_or_else(|| anyhow::anyhow!("no `{after}` in {line}"))?
            .parse()?)
    };
    Ok((word("in tunnel ")?, word("(call ")?))
}

/// The guest's outbound ESP SA toward the gateway: SPI, transform, KEYMAT.
fn client_sa(g: &mut Guest) -> anyhow::Result<(u32, EspTransform, Vec<u8>)> {
    let out = g.must(
        &format!("ip xfrm state list dst {GW_WAN}"),
        Duration::from_secs(10),
    );
    let hex = |s: &str| -> anyhow::Result<Vec<u8>> {
        let s = s.trim_start_matches("0x");
        (0..s.len() / 2)
            .map(|i| Ok(u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?))
            .collect()
    };
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |w: &str, n: usize| {
        words
            .iter()
            .position(|x| *x == w)
            .and_then(|i| words.get(i + n))
            .copied()
    };
    let spi = u32::from_str_radix(after("spi", 1).unwrap_or("").trim_start_matches("0x"), 16)?;
    if let Some(key) = after("rfc4106(gcm(aes))", 1) {
        let key = hex(key)?;
        let t = EspTransform {
            cipher: EspCipher::AesGcm16 {
                key_len: key.len() - 4,
            },
            integ: EspInteg::None,
        };
        return Ok((spi, t, key));
    }
    let enc = hex(after("cbc(aes)", 1).ok_or_else(|| anyhow::anyhow!("no cbc(aes) in {out}"))?)?;
    let auth =
        hex(after("hmac(sha1)", 1).ok_or_else(|| anyhow::anyhow!("no hmac(sha1) in {out}"))?)?;
    anyhow::ensure!(enc.len() == 16, "expected AES-128: {out}");
    let t = EspTransform {
        cipher: EspCipher::Cbc(vpn_proto::ike::crypto::CbcAlg::Aes128),
        integ: EspInteg::HmacSha1_96,
    };
    Ok((spi, t, [enc, auth].concat()))
}

/// The L2TP datagram (in UDP 1701 → 1701) carrying one IPv4/UDP packet of
/// `len` bytes from `inner_src` to the LAN host.
fn l2tp_udp(tunnel: u16, session_id: u16, inner_src: Ipv4Addr, len: usize) -> Vec<u8> {
    let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip.extend_from_slice(&inner_src.octets());
    ip.extend_from_slice(&lan.octets());
    let sum = vpn_tests::packet::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&[0x13, 0x88, 0x00, 0x09]);
    ip.extend_from_slice(&((len - 20) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.resize(len, 0x5a);
    let mut l2tp = vec![0x00, 0x02];
    l2tp.extend_from_slice(&tunnel.to_be_bytes());
    l2tp.extend_from_slice(&session_id.to_be_bytes());
    l2tp.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    l2tp.extend_from_slice(&ip);
    let mut udp = Vec::new();
    udp.extend_from_slice(&1701u16.to_be_bytes());
    udp.extend_from_slice(&1701u16.to_be_bytes());
    udp.extend_from_slice(&((8 + l2tp.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&l2tp);
    udp
}

/// `blast SPI TRANSFORM KEYMAT_HEX TUNNEL SESSION INNER_SRC LEN SKIP`:
/// seals ESP packets ahead of time with sequence numbers from SKIP (far
/// above the client's and earlier blasts'), then sends them as raw ESP for
/// BLAST_SECS or until done; prints the count and the seconds it took.
fn blast(args: &[String]) -> anyhow::Result<()> {
    let spi = u32::from_str_radix(&args[0], 16)?;
    let gcm = args[1] == "gcm";
    let km: Vec<u8> = (0..args[2].len() / 2)
        .map(|i| u8::from_str_radix(&args[2][2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()?;
    let t = if gcm {
        EspTransform {
            cipher: EspCipher::AesGcm16 {
                key_len: km.len() - 4,
            },
            integ: EspInteg::None,
        }
    } else {
        EspTransform {
            cipher: EspCipher::Cbc(vpn_proto::ike::crypto::CbcAlg::Aes128),
            integ: EspInteg::HmacSha1_96,
        }
    };
    let (tunnel, session_id): (u16, u16) = (args[3].parse()?, args[4].parse()?);
    let inner_src: Ipv4Addr = args[5].parse()?;
    let len: usize = args[6].parse()?;
    let skip: u32 = args[7].parse()?;
    let payload = l2tp_udp(tunnel, session_id, inner_src, len);
    let mut sa = Outbound::new(spi, t, &km);
    // Skip past the client's sequence numbers (its packets after this are
    // then replays, which ends the session: the benchmark's last step).
    let mut scratch = Vec::new();
    while sa.sent() < skip {
        scratch.clear();
        sa.seal(NEXT_UDP, &[], &mut scratch)?;
    }
    let packets: Vec<Vec<u8>> = (0..packets(len))
        .map(|_| {
            let mut p = Vec::with_capacity(payload.len() + 64);
            sa.seal(NEXT_UDP, &payload, &mut p).unwrap();
            p
        })
        .collect();
    let gw: Ipv4Addr = GW_WAN.parse()?;
    let (sent, secs) = bench::raw_send(libc::IPPROTO_ESP, gw, &packets, BLAST_SECS, false, None)?;
    println!("{sent} {secs}");
    Ok(())
}

/// (packets/s, inner Mbit/s) the gateway decrypted and delivered from the
/// generator, for `len`-byte inner packets.
fn gateway_rate(
    t: &Topology,
    gw: &Gateway,
    g: &mut Guest,
    len: usize,
    skip: u32,
) -> anyhow::Result<(f64, f64)> {
    let (spi, transform, km) = client_sa(g)?;
    let (tunnel, session_id) = ids(gw)?;
    let inner = g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}'",
        Duration::from_secs(10),
    );
    let inner = inner.trim().split('/').next().unwrap_or("").to_string();
    let kind = if matches!(transform.cipher, EspCipher::AesGcm16 { .. }) {
        "gcm"
    } else {
        "cbc"
    };
    let km_hex: String = km.iter().map(|b| format!("{b:02x}")).collect();
    let before = session(gw)["rx_packets"].as_u64().unwrap_or(0);
    let mut cmd = t
        .inet
        .cmd(std::env::current_exe()?.to_str().unwrap_or_default());
    cmd.args([
        "blast",
        &format!("{spi:08x}"),
        kind,
        &km_hex,
        &tunnel.to_string(),
        &session_id.to_string(),
        &inner,
        &len.to_string(),
        &skip.to_string(),
    ]);
    // Sealing ahead of time is not timed: the clock starts at the first send.
    let child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "generator ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut f = text
        .split_whitespace()
        .map(|w| w.parse::<f64>().unwrap_or(0.0));
    let (sent, secs) = (f.next().unwrap_or(0.0), f.next().unwrap_or(0.0));
    let handled = bench::settled(|| session(gw)["rx_packets"].as_u64().unwrap_or(0))
        .saturating_sub(before) as f64;
    anyhow::ensure!(
        handled > 0.0 && secs > 0.0,
        "the gateway counted nothing (sent {sent} in {secs} s)"
    );
    let pps = handled / secs;
    Ok((pps, pps * len as f64 * 8.0 / 1e6))
}

/// Two figures of one measurement.
type Pair = (f64, f64);

/// A gateway with one L2TP/IPsec client proposing `esp`: the guest's
/// (TCP Mbit/s, UDP pkt/s), then the generator's (pkt/s, Mbit/s) at 64 and
/// 1400 bytes.
fn l2tp_ipsec(
    t: &Topology,
    g: &mut Guest,
    esp: &str,
    skip: u32,
) -> anyhow::Result<(Pair, [Pair; 2])> {
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, "bench", "bench-password-1", None);
    let psk = gw.ipsec_psk();
    let client = L2tpClient {
        user: "bench",
        password: "bench-password-1",
        secret: None,
        ipsec: Some(IpsecProfile {
            psk: &psk,
            ike: "aes128-sha256-modp2048!",
            esp,
            ..Default::default()
        }),
    };
    g.must(&client.connect_script(60), Duration::from_secs(90));
    let guest = measure(t, g)?;
    let small = gateway_rate(t, &gw, g, 64, skip)?;
    let large = gateway_rate(t, &gw, g, 1400, skip * 2)?;
    g.must(
        &format!("ipsec stop >/dev/null 2>&1; {DISCONNECT_SCRIPT}"),
        Duration::from_secs(30),
    );
    Ok((guest, [small, large]))
}

const ROUNDS: usize = 3;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        return blast(&args[2..]);
    }
    let t = Topology::build();
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    // Interleaved: each round measures every path once. Columns: guest TCP
    // and UDP for plain, L2TP, CBC, GCM; then the generator's pkt/s and
    // Mbit/s at 64 and 1400 bytes for CBC and for GCM.
    let mut v: Vec<Vec<f64>> = vec![Vec::new(); 16];
    for _ in 0..ROUNDS {
        let plain = {
            let _gw = Gateway::start(&t.gw, "");
            measure(&t, &mut g)?
        };
        let l2tp = {
            let gw = Gateway::start(&t.gw, "[l2tp]\nallow_plain = true\nfast_path = false\n");
            add_user(&gw, "bench", "bench-password-1", None);
            let client = L2tpClient {
                user: "bench",
                password: "bench-password-1",
                ..Default::default()
            };
            g.must(&client.connect_script(60), Duration::from_secs(90));
            let r = measure(&t, &mut g)?;
            g.must(DISCONNECT_SCRIPT, Duration::from_secs(30));
            r
        };
        let (cbc, cbc_gen) = l2tp_ipsec(&t, &mut g, "aes128-sha1!", 1 << 24)?;
        let (gcm, gcm_gen) = l2tp_ipsec(&t, &mut g, "aes128gcm16!", 1 << 24)?;
        let row = [
            plain.0,
            plain.1,
            l2tp.0,
            l2tp.1,
            cbc.0,
            cbc.1,
            gcm.0,
            gcm.1,
            cbc_gen[0].0,
            cbc_gen[0].1,
            cbc_gen[1].0,
            cbc_gen[1].1,
            gcm_gen[0].0,
            gcm_gen[0].1,
            gcm_gen[1].0,
            gcm_gen[1].1,
        ];
        for (i, x) in row.into_iter().enumerate() {
            v[i].push(x);
        }
    }
    let names = [
        "plain TCP",
        "plain UDP",
        "l2tp TCP",
        "l2tp UDP",
        "cbc TCP",
        "cbc UDP",
        "gcm TCP",
        "gcm UDP",
        "cbc 64 pkt/s",
        "cbc 64 Mbit/s",
        "cbc 1400 pkt/s",
        "cbc 1400 Mbit/s",
        "gcm 64 pkt/s",
        "gcm 64 Mbit/s",
        "gcm 1400 pkt/s",
        "gcm 1400 Mbit/s",
    ];
    let st: Vec<Stats> = names
        .iter()
        .zip(&v)
        .map(|(n, x)| Stats::of(n, x))
        .collect::<anyhow::Result<_>>()?;
    println!("L2TP/IPsec (QEMU guest with strongSwan/xl2tpd/pppd, raw ESP -> LAN host; iperf3, {ROUNDS} interleaved rounds of {SECS} s; median [min-max])");
    println!(
        "  {:<36} {:>22} {:>26}",
        "path", "TCP Mbit/s", "UDP 64 B pkt/s"
    );
    for (i, name) in [
        "plain forwarding, no tunnel",
        "plain L2TP, daemon path",
        "L2TP/IPsec aes128-sha1",
        "L2TP/IPsec aes128gcm16",
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
        "  L2TP/IPsec aes128-sha1 / plain L2TP daemon path: {:.2} (pkt/s), {:.2} (TCP)",
        bench::ratio(&st[5], &st[3]),
        bench::ratio(&st[4], &st[2])
    );
    println!("gateway only (a generator on the internet host seals the session's ESP; one IPsec worker = one core; {BLAST_SECS} s; median [min-max])");
    println!(
        "  {:<12} {:>24} {:>18} {:>24} {:>18}",
        "transform", "64 B pkt/s", "64 B Mbit/s", "1400 B pkt/s", "1400 B Mbit/s"
    );
    for (i, name) in ["aes128-sha1", "aes128gcm16"].iter().enumerate() {
        let b = 8 + 4 * i;
        println!(
            "  {name:<12} {:>24} {:>18} {:>24} {:>18}",
            st[b].show(0),
            st[b + 1].show(0),
            st[b + 2].show(0),
            st[b + 3].show(0)
        );
    }
    let rows: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&st)
        .map(|(n, s)| (n.to_string(), s.json()))
        .collect();
    bench::write_json("ipsec", serde_json::json!({"rounds": ROUNDS, "rows": rows}))?;
    Ok(())
}
