//! `cargo xtask bench ipsec`: L2TP/IPsec's userspace data path against
//! SoftEther's, in one run on the standard topology.
//!
//! From a QEMU guest (strongSwan + xl2tpd + pppd, no NAT) to the LAN host
//! through the gateway, TCP Mbit/s and 64-byte UDP packets/s (iperf3) for:
//! plain forwarding (no tunnel), plain L2TP on the daemon's path (the same
//! L2TP/PPP work without crypto), vpn-ctl's L2TP/IPsec with
//! AES-CBC-128/HMAC-SHA1-96 and with AES-GCM-128, and SoftEther's
//! (`softether-vpnserver`, the userspace anchor, decisions #56) with
//! AES-CBC-128/HMAC-SHA1-96 in the same namespace while vpn-ctl is down.
//! The guest runs under TCG and bounds those rows, so a second table takes
//! the client out: a generator on the internet host seals the session's
//! ESP with the keys the guest's kernel holds (`esp_generator`) and sends
//! it from the client's address; what reaches the LAN host is counted
//! there, the same way for both servers, at a sweep of offered rates (a
//! server's best) and under an unpaced flood, for 64- and 1400-byte inner
//! packets. Rounds interleave every path (median and spread; the ratios to
//! SoftEther per round); results also go to target/bench/ipsec.json. Exits
//! non-zero when a measurement failed.
use std::{net::Ipv4Addr, time::Duration};

use anyhow::Context as _;
use vpn_tests::{
    bench::{self, Stats},
    esp_generator::{Blast, ClientSa},
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{IpsecProfile, L2tpClient, DISCONNECT_SCRIPT},
    native_client::add_user,
    softether::SoftEther,
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

/// The server's (tunnel ID, session ID), as the guest's xl2tpd logged
/// them ("Connection established to ..., Remote: T" and "Call established
/// with ..., Remote: S"): the same for either server.
fn ids(g: &mut Guest) -> anyhow::Result<(u16, u16)> {
    let log = g.must("cat /tmp/xl2tpd.log", Duration::from_secs(10));
    let remote = |marker: &str| -> anyhow::Result<u16> {
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(marker))
            .ok_or_else(|| anyhow::anyhow!("no `{marker}` in xl2tpd's log:\n{log}"))?;
        Ok(line
            .split("Remote: ")
            .nth(1)
            .and_then(|r| r.split([' ', ',']).next())
            .ok_or_else(|| anyhow::anyhow!("no remote ID in {line}"))?
            .parse()?)
    };
    Ok((
        remote("Connection established to")?,
        remote("Call established with")?,
    ))
}

/// Packets the LAN host has received (what reached it through either
/// server, counted the same way for both).
fn lan_received(t: &Topology) -> u64 {
    // Through netlink: /sys would show the host's interfaces (`nsenter`
    // changes only the network namespace).
    let out = t.lan.must("ip -j -s link show dev eth0");
    serde_json::from_str::<serde_json::Value>(&out).unwrap_or_default()[0]["stats64"]["rx"]
        ["packets"]
        .as_u64()
        .unwrap_or(0)
}

/// `blast JSON`: seals the packets of one [`Blast`] ahead of time, then
/// sends them for BLAST_SECS or until done, paced to RATE packets/s (0: as
/// fast as it can); prints the count and the seconds it took. Run in the
/// internet host's namespace.
fn blast(args: &[String]) -> anyhow::Result<()> {
    let (b, rate): (Blast, f64) = serde_json::from_str(&args[0])?;
    let packets = b.packets()?;
    let (sent, secs) = bench::raw_send(
        libc::IPPROTO_RAW,
        b.sa.dst,
        &packets,
        BLAST_SECS,
        false,
        (rate > 0.0).then_some(rate),
    )?;
    println!("{sent} {secs}");
    Ok(())
}

/// What the generator needs of one connected client: its outbound SA,
/// the server's L2TP IDs and the client's address inside. Read once per
/// connection: the blasts move the server's replay window past the
/// client's own sequence numbers, so the client's pppd soon gives up (its
/// echoes are replays).
struct Client {
    sa: ClientSa,
    tunnel: u16,
    session_id: u16,
    inner: Ipv4Addr,
}

fn client(g: &mut Guest) -> anyhow::Result<Client> {
    let xfrm = g.must(
        &format!("ip xfrm state list dst {GW_WAN}"),
        Duration::from_secs(10),
    );
    let (tunnel, session_id) = ids(g)?;
    let inner = g.must(
        "ip -4 -o addr show dev ppp0 | awk '{print $4}'",
        Duration::from_secs(10),
    );
    Ok(Client {
        sa: ClientSa::parse(&xfrm)?,
        tunnel,
        session_id,
        inner: inner.trim().split('/').next().unwrap_or("").parse()?,
    })
}

/// Packets/s that one blast delivered to the LAN host.
fn blast_once(t: &Topology, c: &Client, len: usize, skip: u32, rate: f64) -> anyhow::Result<f64> {
    let b = Blast {
        sa: c.sa.clone(),
        tunnel: c.tunnel,
        session_id: c.session_id,
        inner_src: c.inner,
        inner_dst: LAN_HOST.parse()?,
        len,
        skip,
        count: packets(len),
    };
    let before = lan_received(t);
    // Sealing ahead of time is not timed: the clock starts at the first send.
    let out = t
        .inet
        .cmd(std::env::current_exe()?.to_str().unwrap_or_default())
        .arg("blast")
        .arg(serde_json::to_string(&(b, rate))?)
        .stdout(std::process::Stdio::piped())
        .spawn()?
        .wait_with_output()?;
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
    let (_sent, secs) = (f.next().unwrap_or(0.0), f.next().unwrap_or(0.0));
    let delivered = bench::settled(|| lan_received(t)).saturating_sub(before) as f64;
    anyhow::ensure!(secs > 0.0, "the generator sent nothing");
    Ok(delivered / secs)
}

/// Offered rates of the sweep, packets/s, doubling.
const OFFERED: [f64; 5] = [25e3, 50e3, 100e3, 200e3, 400e3];

/// A server's packets/s for `len`-byte inner packets: the most it delivered
/// at any offered rate (its throughput), and what it delivered under the
/// generator's unpaced flood (a userspace server can deliver far less when
/// offered more than it can take). The doubling sweep stops at the first
/// rate not met (below 90% delivered), then halves the gap to the last
/// rate met twice, so a server is not judged only overloaded; the flood
/// always runs.
fn sweep(t: &Topology, c: &Client, len: usize, skip: u32) -> anyhow::Result<Pair> {
    let mut n = 0;
    let mut blast = |rate: f64| -> anyhow::Result<f64> {
        // Each blast's sequence numbers above the last's (ESP's window).
        let got = blast_once(t, c, len, skip + n * (1 << 20), rate)?;
        n += 1;
        if rate > 0.0 {
            eprintln!("  {len} B offered {rate:.0} pkt/s: {got:.0} pkt/s reached the LAN host");
        } else {
            eprintln!("  {len} B unpaced: {got:.0} pkt/s reached the LAN host");
        }
        Ok(got)
    };
    let (mut best, mut met, mut missed) = (0f64, 0f64, None);
    for rate in OFFERED {
        let got = blast(rate)?;
        best = best.max(got);
        if got < 0.9 * rate {
            missed = Some(rate);
            break;
        }
        met = rate;
    }
    if let Some(mut hi) = missed {
        for _ in 0..2 {
            let mid = (met + hi) / 2.0;
            let got = blast(mid)?;
            best = best.max(got);
            if got < 0.9 * mid {
                hi = mid;
            } else {
                met = mid;
            }
        }
    }
    let flood = blast(0.0)?;
    anyhow::ensure!(best > 0.0, "nothing reached the LAN host at {len} bytes");
    Ok((best.max(flood), flood))
}

/// Two figures of one measurement.
type Pair = (f64, f64);

/// What one server gave in a round: the guest's (TCP Mbit/s, UDP pkt/s),
/// then the generator's (best pkt/s, pkt/s under a flood) at 64 and 1400
/// bytes.
struct Figures {
    guest: Pair,
    small: Pair,
    large: Pair,
}

/// Connects the guest, measures, hangs up.
fn figures(
    what: &str,
    t: &Topology,
    g: &mut Guest,
    client: &L2tpClient,
    skip: u32,
) -> anyhow::Result<Figures> {
    eprintln!("{what}:");
    g.must(&client.connect_script(60), Duration::from_secs(90));
    let guest = measure(t, g)?;
    let c = self::client(g)?;
    let small = sweep(t, &c, 64, skip).with_context(|| what.to_string())?;
    let large = sweep(t, &c, 1400, skip + (1 << 24)).with_context(|| what.to_string())?;
    g.must(
        &format!("ipsec stop >/dev/null 2>&1; {DISCONNECT_SCRIPT}"),
        Duration::from_secs(30),
    );
    Ok(Figures {
        guest,
        small,
        large,
    })
}

fn ipsec_client<'a>(psk: &'a str, esp: &'a str) -> L2tpClient<'a> {
    L2tpClient {
        user: "bench",
        password: "bench-password-1",
        secret: None,
        ipsec: Some(IpsecProfile {
            psk,
            ike: "aes128-sha256-modp2048!",
            esp,
            ..Default::default()
        }),
    }
}

/// vpn-ctl with one L2TP/IPsec client proposing `esp`.
fn vpn_ctl(t: &Topology, g: &mut Guest, esp: &str, skip: u32) -> anyhow::Result<Figures> {
    // LCP echoes and L2TP HELLOs far apart: the blasts leave the client's
    // own packets (its answers) behind the replay window, and the session
    // must outlive the sweeps.
    let gw = Gateway::start(
        &t.gw,
        "[l2tp]\necho_interval_secs = 3600\nhello_interval_secs = 3600\n",
    );
    add_user(&gw, "bench", "bench-password-1", None);
    let psk = gw.ipsec_psk();
    figures(
        &format!("vpn-ctl {esp}"),
        t,
        g,
        &ipsec_client(&psk, esp),
        skip,
    )
}

/// SoftEther's L2TP/IPsec server in the gateway's namespace (vpn-ctl
/// stopped), with the same client: ESP AES-CBC-128 with HMAC-SHA1-96
/// (SoftEther has no AES-GCM for ESP).
fn softether(t: &Topology, g: &mut Guest, skip: u32) -> anyhow::Result<Figures> {
    let _se = SoftEther::start(&t.gw, "lan0", SOFTETHER_PSK, "bench", "bench-password-1")?;
    figures(
        "SoftEther aes128-sha1",
        t,
        g,
        &ipsec_client(SOFTETHER_PSK, "aes128-sha1!"),
        skip,
    )
}

/// SoftEther's PSK (its own; vpn-ctl's is generated per gateway).
const SOFTETHER_PSK: &str = "bench-softether-psk-0123";

/// Rounds unless `VPN_BENCH_ROUNDS` says otherwise (1 for a quick look).
fn rounds() -> usize {
    std::env::var("VPN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

/// Named columns, one sample per round.
#[derive(Default)]
struct Columns(Vec<(String, Vec<f64>)>);

impl Columns {
    fn push(&mut self, name: &str, v: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, xs)) => xs.push(v),
            None => self.0.push((name.into(), vec![v])),
        }
    }

    fn figures(&mut self, name: &str, f: &Figures) {
        self.push(&format!("{name} guest TCP Mbit/s"), f.guest.0);
        self.push(&format!("{name} guest UDP pkt/s"), f.guest.1);
        self.push(&format!("{name} 64 pkt/s"), f.small.0);
        self.push(&format!("{name} 64 flood pkt/s"), f.small.1);
        self.push(&format!("{name} 1400 pkt/s"), f.large.0);
        self.push(
            &format!("{name} 1400 Mbit/s"),
            f.large.0 * 1400.0 * 8.0 / 1e6,
        );
        self.push(&format!("{name} 1400 flood pkt/s"), f.large.1);
    }

    fn stats(&self, name: &str) -> anyhow::Result<Stats> {
        let (_, xs) = self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| anyhow::anyhow!("no column {name}"))?;
        Stats::of(name, xs)
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        return blast(&args[2..]);
    }
    anyhow::ensure!(
        SoftEther::installed(),
        "softether-vpnserver is not installed (scripts/setup installs it)"
    );
    let t = Topology::build();
    let mut g = Guest::start(&t, "bench", Site::Internet(1));
    t.inet.must("ip route add 172.16.10.0/24 via 198.18.0.1");
    // Interleaved: each round measures every path once.
    let mut c = Columns::default();
    for _ in 0..rounds() {
        let plain = {
            let _gw = Gateway::start(&t.gw, "");
            measure(&t, &mut g)?
        };
        c.push("plain guest TCP Mbit/s", plain.0);
        c.push("plain guest UDP pkt/s", plain.1);
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
        c.push("l2tp guest TCP Mbit/s", l2tp.0);
        c.push("l2tp guest UDP pkt/s", l2tp.1);
        let cbc = vpn_ctl(&t, &mut g, "aes128-sha1!", 1 << 24)?;
        let gcm = vpn_ctl(&t, &mut g, "aes128gcm16!", 1 << 24)?;
        let se = softether(&t, &mut g, 1 << 24)?;
        c.figures("cbc", &cbc);
        c.figures("gcm", &gcm);
        c.figures("softether", &se);
        // Ratios per round (the machine's load moves both alike).
        c.push("ratio 64", cbc.small.0 / se.small.0);
        c.push("ratio 1400", cbc.large.0 / se.large.0);
        c.push("ratio 64 flood", cbc.small.1 / se.small.1);
    }
    report(&c)
}

fn report(c: &Columns) -> anyhow::Result<()> {
    let s = |n: &str| c.stats(n);
    let rounds = rounds();
    println!("L2TP/IPsec (QEMU guest with strongSwan/xl2tpd/pppd -> LAN host; iperf3, {rounds} interleaved rounds of {SECS} s; median [min-max])");
    println!(
        "  {:<36} {:>22} {:>26}",
        "path", "TCP Mbit/s", "UDP 64 B pkt/s"
    );
    for (key, name) in [
        ("plain", "plain forwarding, no tunnel"),
        ("l2tp", "plain L2TP, daemon path"),
        ("cbc", "vpn-ctl aes128-sha1"),
        ("gcm", "vpn-ctl aes128gcm16"),
        ("softether", "SoftEther aes128-sha1"),
    ] {
        println!(
            "  {name:<36} {:>22} {:>26}",
            s(&format!("{key} guest TCP Mbit/s"))?.show(0),
            s(&format!("{key} guest UDP pkt/s"))?.show(0)
        );
    }
    println!("servers only: a generator on the internet host seals the session's ESP (the guest's SA) from the client's address; packets/s that reached the LAN host, the best over a sweep of offered rates from {} pkt/s, and under an unpaced flood; {BLAST_SECS} s each; median [min-max]", OFFERED[0]);
    println!(
        "  {:<24} {:>24} {:>22} {:>24} {:>18} {:>22}",
        "server, transform",
        "64 B pkt/s",
        "64 B flood",
        "1400 B pkt/s",
        "1400 B Mbit/s",
        "1400 B flood"
    );
    for (key, name) in [
        ("cbc", "vpn-ctl aes128-sha1"),
        ("gcm", "vpn-ctl aes128gcm16"),
        ("softether", "SoftEther aes128-sha1"),
    ] {
        println!(
            "  {name:<24} {:>24} {:>22} {:>24} {:>18} {:>22}",
            s(&format!("{key} 64 pkt/s"))?.show(0),
            s(&format!("{key} 64 flood pkt/s"))?.show(0),
            s(&format!("{key} 1400 pkt/s"))?.show(0),
            s(&format!("{key} 1400 Mbit/s"))?.show(0),
            s(&format!("{key} 1400 flood pkt/s"))?.show(0)
        );
    }
    println!(
        "  vpn-ctl / SoftEther (aes128-sha1, per round): 64 B {}, 1400 B {}, 64 B under the flood {}",
        s("ratio 64")?.show(2),
        s("ratio 1400")?.show(2),
        s("ratio 64 flood")?.show(1)
    );
    let rows: serde_json::Map<String, serde_json::Value> =
        c.0.iter()
            .map(|(n, xs)| Ok((n.clone(), Stats::of(n, xs)?.json())))
            .collect::<anyhow::Result<_>>()?;
    bench::write_json("ipsec", serde_json::json!({"rounds": rounds, "rows": rows}))?;
    Ok(())
}
