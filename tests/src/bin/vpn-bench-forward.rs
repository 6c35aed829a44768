//! `cargo xtask bench dataplane`: the paths a plain L2TP call's packets
//! can take between the WAN and a LAN host, both ways, measured in one
//! run, 64-byte inner packets, interleaved rounds:
//!
//! - plain XDP_REDIRECT between the same veths (a four-instruction
//!   program: the baseline, the most any XDP forwarding can do here);
//! - vpn-ctl's XDP forwarding (decisions #54: decapsulate or encapsulate,
//!   route, redirect);
//! - the TC path: TC decapsulation, vpn0 and the stack's forwarding (or
//!   the stack, vpn0's TC encapsulation): the same call, to or from a LAN
//!   host behind an interface that is not in `xdp.forward_interfaces`;
//! - the userspace path: the daemon's L2TP (a second call, which sequences
//!   its data, so the gateway keeps it out of the kernel).
//!
//! The generator is BPF_PROG_TEST_RUN in live-frames mode on the
//! interface the packets arrive on (this kernel has no pktgen): each frame
//! is run through the program attached there (the gateway's, or the
//! baseline) as if it had arrived, redirects really happen and passed
//! frames go up the stack. The receivers are XDP_DROP programs on the far
//! veths (the LAN hosts', the internet router's); packets/s is what they
//! received over the generator's own time (its loop over the frames, not
//! its set-up; docs/decisions.md #60) plus however long packets went on
//! arriving after it returned. The gateway's counters prove which path
//! carried each row. Before the rounds, each direction's plain and XDP
//! programs are also timed alone (BPF_PROG_TEST_RUN without live frames):
//! vpn-ctl's own cost per packet. Results also go to
//! target/bench/forward.json.
use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use serde_json::json;
use vpn_ctl::dataplane::test_run;
use vpn_tests::{
    bench::{self, Stats},
    gateway::Gateway,
    l2tp_peer::L2tpCall,
    native_client::add_user,
    netns::{enter_thread, in_ns, Netns},
    packet::{Frame, L4},
    raw_bpf,
    topology::{Topology, C1, GW_WAN, INET, LAN_HOST},
};

const ROUNDS: usize = 7;
const REPEAT: u32 = 1_000_000;
/// Runs per round when the programs are timed alone.
const PROGRAM_REPEAT: u32 = 2_000_000;
/// The inner packets' size (IPv4 + UDP + payload).
const INNER: usize = 64;
const LAN2_HOST: &str = "172.16.20.2";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Plain,
    Xdp,
    Tc,
    Userspace,
}

impl Path {
    const ALL: [Path; 4] = [Path::Plain, Path::Xdp, Path::Tc, Path::Userspace];

    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain XDP_REDIRECT (baseline)",
            Path::Xdp => "vpn-ctl XDP forwarding",
            Path::Tc => "TC path (stack forwarding)",
            Path::Userspace => "userspace (the daemon's L2TP)",
        }
    }
}

/// `rx_packets` of `ifname` in namespace `ns`.
fn rx_packets(ns: &Netns, ifname: &str) -> u64 {
    let out = ns.must(&format!("ip -s -j link show {ifname}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap_or(0)
}

fn mac(ns: &Netns, ifname: &str) -> String {
    let out = ns.must(&format!("ip -j link show {ifname}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    let out = ns.must(&format!("ip -j link show {ifname}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["ifindex"].as_u64().unwrap_or(0) as u32
}

/// The call's session row.
fn row(gw: &Gateway, addr: Ipv4Addr) -> serde_json::Value {
    gw.sessions()
        .into_iter()
        .find(|r| r["assigned_ip"] == addr.to_string())
        .unwrap_or_default()
}

/// A WAN frame carrying `call`'s 64-byte UDP packet to `dst`, as the
/// client at `port` sends it, addressed to the gateway's WAN MAC.
fn frame(call: &mut L2tpCall, port: u16, dst: &str, wan_mac: &[u8; 6]) -> Vec<u8> {
    let src = call.ppp.address().expect("the call has an address");
    let dst: Ipv4Addr = dst.parse().unwrap();
    let inner = Frame {
        l4: L4::Udp {
            sport: 40000,
            dport: 9,
            payload: vec![0x5a; INNER - 28],
        },
        ..Frame::udp(src.octets(), dst.octets(), 9)
    }
    .build()[14..]
        .to_vec();
    let ppp = call.ppp.ip_frame(&inner);
    let l2tp = call.data_packet(&ppp);
    let c1: Ipv4Addr = C1.parse().unwrap();
    let gw: Ipv4Addr = GW_WAN.parse().unwrap();
    let mut f = Frame {
        l4: L4::Udp {
            sport: port,
            dport: 1701,
            payload: l2tp,
        },
        ..Frame::udp(c1.octets(), gw.octets(), 1701)
    }
    .build();
    f[..6].copy_from_slice(wan_mac);
    f
}

/// A LAN frame: `INNER` bytes of UDP from `src` to a client at `dst`,
/// addressed to the gateway's interface MAC `to`.
fn lan_frame(src: &str, dst: Ipv4Addr, to: &[u8; 6]) -> Vec<u8> {
    let src: Ipv4Addr = src.parse().unwrap();
    let mut f = Frame {
        l4: L4::Udp {
            sport: 40000,
            dport: 9,
            payload: vec![0x5a; INNER - 28],
        },
        ..Frame::udp(src.octets(), dst.octets(), 9)
    }
    .build();
    f[..6].copy_from_slice(to);
    f
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (d, h) in m.iter_mut().zip(s.split(':')) {
        *d = u8::from_str_radix(h, 16).unwrap_or(0);
    }
    m
}

/// The client's UDP port of a call, from its session row ("ip:port").
fn peer_port(r: &serde_json::Value) -> anyhow::Result<u16> {
    r["peer"]
        .as_str()
        .and_then(|p| p.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no peer port in {r}"))
}

/// Reads `read` every 20 ms until it has not moved for 300 ms: each
/// reading with when (after `start`) it was taken, the first at once.
fn settle(start: Instant, mut read: impl FnMut() -> u64) -> Vec<(Duration, u64)> {
    let mut seen = vec![(start.elapsed(), read())];
    let mut still_since = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = read();
        if seen.last().is_some_and(|&(_, v)| v != now) {
            still_since = start.elapsed();
        } else if start.elapsed() - still_since > Duration::from_millis(300)
            || Instant::now() > deadline
        {
            return seen;
        }
        seen.push((start.elapsed(), now));
    }
}

/// How long after the generator returned (`returned`) the packets went on
/// arriving: until the first reading of `seen` within a thousandth of the
/// round's `delivered` of the final count (the odd packet of the hosts'
/// own does not count); zero if the first reading, taken as the generator
/// returned, was already there.
fn arrival_tail(seen: &[(Duration, u64)], delivered: u64, returned: Duration) -> Duration {
    let last = seen.last().map_or(0, |&(_, v)| v);
    let near = last - delivered / 1000;
    match seen.iter().position(|&(_, v)| v >= near) {
        Some(0) | None => Duration::ZERO,
        Some(i) => seen[i].0.saturating_sub(returned),
    }
}

/// One path's run: the frame, the generator that restores it and tail
/// calls the program under test (with the program array it uses), the
/// same for runs without live frames (`reset`), the interface of the
/// gateway the frames arrive on, and the receiver (namespace, interface).
struct Run<'a> {
    frame: Vec<u8>,
    first: OwnedFd,
    reset: OwnedFd,
    _progs: OwnedFd,
    ingress: u32,
    receiver: (&'a Netns, &'static str),
}

/// One direction's four paths (in `Path::ALL` order) and the counters
/// that tell them apart: the gateway's for XDP forwarding and for the TC
/// path, and the userspace call's session field.
struct Direction<'a> {
    title: &'static str,
    runs: Vec<Run<'a>>,
    xdp_counter: &'static str,
    tc_counter: &'static str,
    daemon_field: &'static str,
}

/// How many of a frame's first bytes the generator restores: the outer
/// headers and the inner IPv4 header, all a path may rewrite in place.
const RESTORE: usize = 80;

/// The run of `frame` through program `prog`, arriving on `ingress`.
fn run<'a>(
    frame: Vec<u8>,
    prog: &OwnedFd,
    ingress: u32,
    receiver: (&'a Netns, &'static str),
) -> anyhow::Result<Run<'a>> {
    let progs = raw_bpf::prog_array_with(prog)?;
    let restore = RESTORE.min(frame.len() / 4 * 4);
    let first = raw_bpf::load_xdp_restore_then(&frame[..restore], &progs)?;
    let reset = raw_bpf::load_xdp_reset_then(frame.len(), &frame[..restore], &progs)?;
    Ok(Run {
        frame,
        first,
        reset,
        _progs: progs,
        ingress,
        receiver,
    })
}

struct Bench<'a> {
    gw: &'a Gateway<'a>,
    gw_ns: String,
    userspace_addr: Ipv4Addr,
    repeat: u32,
}

impl Bench<'_> {
    /// One round of `path` in `dir`: packets/s delivered.
    fn round(&self, dir: &Direction, path: Path) -> anyhow::Result<f64> {
        let r = &dir.runs[path as usize];
        let receiver = || rx_packets(r.receiver.0, r.receiver.1);
        let counter = |n: &str| self.gw.count("counters", n);
        let daemon = || {
            row(self.gw, self.userspace_addr)[dir.daemon_field]
                .as_u64()
                .unwrap_or(0)
        };
        let (xdp0, tc0, user0, rx0) = (
            counter(dir.xdp_counter),
            counter(dir.tc_counter),
            daemon(),
            receiver(),
        );
        let start = Instant::now();
        let (fd, frame, ingress, repeat) =
            (r.first.as_raw_fd(), r.frame.clone(), r.ingress, self.repeat);
        let per_frame = in_ns(&self.gw_ns, move || {
            test_run::run_xdp_live(fd, &frame, ingress, repeat)
        })?;
        let returned = start.elapsed();
        let seen = settle(start, receiver);
        let delivered = seen.last().map_or(0, |&(_, v)| v) - rx0;
        // The generator's own loop (its page pool's set-up, tens of
        // milliseconds, is not the path's time), then whatever arrived
        // after it returned (the daemon's queue draining, say).
        let took = Duration::from_nanos(u64::from(per_frame) * u64::from(repeat))
            + arrival_tail(&seen, delivered, returned);
        let (xdp, tc, user) = (
            counter(dir.xdp_counter) - xdp0,
            counter(dir.tc_counter) - tc0,
            daemon() - user0,
        );
        // Which path carried them (all but a few: the hosts' own packets).
        let most = delivered - delivered / 1000;
        let proof = match path {
            Path::Plain => xdp == 0 && tc == 0,
            Path::Xdp => xdp >= most && tc == 0,
            Path::Tc => tc >= most && xdp == 0,
            Path::Userspace => user >= most && xdp == 0 && tc == 0,
        };
        anyhow::ensure!(
            proof,
            "{}, {}: {delivered} delivered, but {} +{xdp}, {} +{tc}, daemon +{user}",
            dir.title,
            path.name(),
            dir.xdp_counter,
            dir.tc_counter
        );
        bench::measured(path.name(), delivered as f64 / took.as_secs_f64())
    }

    /// The time per packet of `path`'s first stage and program alone:
    /// BPF_PROG_TEST_RUN without live frames (nothing is sent, a redirect
    /// is only decided), in nanoseconds.
    fn program_ns(&self, dir: &Direction, path: Path) -> anyhow::Result<f64> {
        let r = &dir.runs[path as usize];
        let (fd, frame, ingress) = (r.reset.as_raw_fd(), r.frame.clone(), r.ingress);
        let ns = in_ns(&self.gw_ns, move || {
            test_run::time_xdp(fd, &frame, ingress, PROGRAM_REPEAT)
        })?;
        bench::measured(path.name(), f64::from(ns))
    }

    /// `ROUNDS` interleaved rounds of the plain and the XDP program alone:
    /// their times per packet and the difference, printed and as JSON.
    fn measure_programs(&self, dir: &Direction) -> anyhow::Result<serde_json::Value> {
        let (mut plain, mut xdp, mut extra) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (p, x) = (
                self.program_ns(dir, Path::Plain)?,
                self.program_ns(dir, Path::Xdp)?,
            );
            plain.push(p);
            xdp.push(x);
            extra.push(x - p);
        }
        let (plain, xdp, extra) = (
            Stats::of("plain program", &plain)?,
            Stats::of("XDP program", &xdp)?,
            Stats::of("extra", &extra)?,
        );
        println!(
            "{}, the programs alone (BPF_PROG_TEST_RUN without live frames, x{PROGRAM_REPEAT}), ns per packet, median [min-max]",
            dir.title
        );
        println!("  {:<32} {}", Path::Plain.name(), plain.show(1));
        println!("  {:<32} {}", Path::Xdp.name(), xdp.show(1));
        println!("  {:<32} {}", "vpn-ctl's extra, per round", extra.show(1));
        Ok(json!({"plain": plain.json(), "xdp": xdp.json(), "extra": extra.json()}))
    }

    /// `ROUNDS` interleaved rounds of every path of `dir`: the table and
    /// the ratios, printed; the JSON of both.
    fn measure(&self, dir: &Direction) -> anyhow::Result<serde_json::Value> {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Path::ALL.len()];
        for round in 0..ROUNDS {
            // A different order each round: none always runs on a warm cache.
            for k in 0..Path::ALL.len() {
                let i = (k + round) % Path::ALL.len();
                samples[i].push(self.round(dir, Path::ALL[i])?);
            }
        }
        let stats: Vec<Stats> = Path::ALL
            .iter()
            .zip(&samples)
            .map(|(p, s)| Stats::of(p.name(), s))
            .collect::<anyhow::Result<_>>()?;
        println!(
            "{}, plain L2TP call, {INNER}-byte packets from BPF_PROG_TEST_RUN live frames (x{REPEAT} per round, {ROUNDS} interleaved rounds); packets/s received, median [min-max]",
            dir.title
        );
        for (p, s) in Path::ALL.iter().zip(&stats) {
            println!("  {:<32} {}", p.name(), s.show(0));
        }
        // Each round measures every path within a few seconds: the ratio
        // of one round's figures cancels the machine's slower and faster
        // phases.
        let paired = |a: usize, b: usize, what: &str| {
            let r: Vec<f64> = samples[a]
                .iter()
                .zip(&samples[b])
                .map(|(x, y)| x / y)
                .collect();
            Stats::of(what, &r)
        };
        let ratios = [
            (
                "xdp_over_plain",
                "XDP forwarding / plain XDP_REDIRECT",
                paired(1, 0, "xdp/plain")?,
                "0.70",
            ),
            (
                "xdp_over_tc",
                "XDP forwarding / TC path",
                paired(1, 2, "xdp/tc")?,
                "3",
            ),
            (
                "xdp_over_userspace",
                "XDP forwarding / userspace",
                paired(1, 3, "xdp/userspace")?,
                "10",
            ),
        ];
        println!("  ratios, per round (median [min-max]):");
        for (_, what, r, goal) in &ratios {
            println!("    {what:<36} {} (goal >= {goal})", r.show(2));
        }
        let rows: serde_json::Map<String, serde_json::Value> = Path::ALL
            .iter()
            .zip(&stats)
            .map(|(p, s)| (format!("{p:?}").to_lowercase(), s.json()))
            .collect();
        let ratios: serde_json::Map<String, serde_json::Value> = ratios
            .iter()
            .map(|(k, _, r, _)| (k.to_string(), r.json()))
            .collect();
        Ok(json!({"packets_per_second": rows, "ratios_per_round": ratios}))
    }
}

/// Attaches an XDP_DROP receiver to `ifname` in `ns`; detached when the
/// returned link is dropped.
fn receiver(ns: &Netns, ifname: &str) -> anyhow::Result<OwnedFd> {
    let idx = ifindex(ns, ifname);
    in_ns(&ns.name, move || {
        let prog = raw_bpf::load_xdp_drop()?;
        raw_bpf::attach_xdp(&prog, idx)
    })
}

/// The id of the XDP program attached to `ifname` in `ns`.
fn xdp_prog_id(ns: &Netns, ifname: &str) -> u32 {
    let out = ns.must(&format!("ip -j link show {ifname}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["xdp"]["prog"]["id"].as_u64().unwrap_or(0) as u32
}

fn main() -> anyhow::Result<()> {
    let t = Topology::build();
    // A second LAN behind lan1, which is not a forwarding interface.
    let lan2 = Netns::new(format!("{}2", t.lan.name));
    vpn_tests::netns::must(&format!(
        "ip link add lan1 netns {} type veth peer name eth0 netns {}",
        t.gw.name, lan2.name
    ));
    t.gw.must("ip addr add 172.16.20.1/24 dev lan1 && ip link set lan1 up");
    lan2.must(
        "ip addr add 172.16.20.2/24 dev eth0 && ip link set eth0 up && \
         ip route add default via 172.16.20.1",
    );
    // No IPv6 chatter (router and neighbour solicitations) on the LANs.
    for (ns, ifname) in [
        (&t.gw, "lan0"),
        (&t.gw, "lan1"),
        (&t.lan, "eth0"),
        (&lan2, "eth0"),
    ] {
        ns.must(&format!("sysctl -qw net.ipv6.conf.{ifname}.disable_ipv6=1"));
    }
    // The calls' clients are not polled while the rounds run: no LCP
    // echo or tunnel HELLO may come due.
    let gw = Gateway::start(
        &t.gw,
        "[l2tp]\nallow_plain = true\nhello_interval_secs = 3600\necho_interval_secs = 3600\n\
         [xdp]\nforward_interfaces = [\"lan0\"]\n",
    );
    anyhow::ensure!(
        gw.status()["xdp_forward"]["active"] == true,
        "XDP forwarding is not on: {}",
        gw.status()["xdp_forward"]
    );
    // The receivers drop in XDP and answer no ARP: their neighbour
    // entries are made permanent first.
    for (ns, peer, ifname, host) in [
        (&t.lan, "eth0", "lan0", LAN_HOST),
        (&lan2, "eth0", "lan1", LAN2_HOST),
        (&t.inet, "gw0", "wan0", INET),
    ] {
        t.gw.must(&format!(
            "ip neigh replace {host} lladdr {} dev {ifname} nud permanent",
            mac(ns, peer)
        ));
    }

    add_user(&gw, "carol", "carol-password-1", None);
    add_user(&gw, "dave", "dave-password-1", None);
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    let c1 = t.c1.name.clone();
    let (mut fast, mut slow) = std::thread::spawn(move || {
        enter_thread(&c1);
        let a = L2tpCall::connect(gw_wan, "carol", "carol-password-1", 21)?;
        let b = L2tpCall::connect_sequenced(gw_wan, "dave", "dave-password-1", 22)?;
        anyhow::Ok((a, b))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    let (a, b) = (
        fast.ppp.address().unwrap_or(Ipv4Addr::UNSPECIFIED),
        slow.ppp.address().unwrap_or(Ipv4Addr::UNSPECIFIED),
    );
    let (ra, rb) = (row(&gw, a), row(&gw, b));
    anyhow::ensure!(
        ra["fast_path"] == true && rb["fast_path"] == false,
        "call A must be on the fast path, call B not: {ra} {rb}"
    );
    let (wan0, lan0, lan1) = (
        ifindex(&t.gw, "wan0"),
        ifindex(&t.gw, "lan0"),
        ifindex(&t.gw, "lan1"),
    );
    let (wan_mac, lan0_mac, lan1_mac) = (
        parse_mac(&mac(&t.gw, "wan0")),
        parse_mac(&mac(&t.gw, "lan0")),
        parse_mac(&mac(&t.gw, "lan1")),
    );
    let wan_prog =
        raw_bpf::prog_by_id(gw.status()["wan"]["xdp_prog_id"].as_u64().unwrap_or(0) as u32)?;
    let lan_prog = raw_bpf::prog_by_id(xdp_prog_id(&t.gw, "lan0"))?;
    let (a_port, b_port) = (peer_port(&ra)?, peer_port(&rb)?);
    let to_lan = frame(&mut fast, a_port, LAN_HOST, &wan_mac);
    let (lan, lan2_rx, inet) = ((&t.lan, "eth0"), (&lan2, "eth0"), (&t.inet, "gw0"));
    let down = Direction {
        title: "WAN -> LAN",
        runs: vec![
            run(
                to_lan.clone(),
                &raw_bpf::load_xdp_redirect(lan0)?,
                wan0,
                lan,
            )?,
            run(to_lan, &wan_prog, wan0, lan)?,
            run(
                frame(&mut fast, a_port, LAN2_HOST, &wan_mac),
                &wan_prog,
                wan0,
                lan2_rx,
            )?,
            run(
                frame(&mut slow, b_port, LAN2_HOST, &wan_mac),
                &wan_prog,
                wan0,
                lan2_rx,
            )?,
        ],
        xdp_counter: "xdp_fwd_rx",
        tc_counter: "fast_rx",
        daemon_field: "rx_packets",
    };
    let from_lan = lan_frame(LAN_HOST, a, &lan0_mac);
    let up = Direction {
        title: "LAN -> WAN",
        runs: vec![
            run(
                from_lan.clone(),
                &raw_bpf::load_xdp_redirect(wan0)?,
                lan0,
                inet,
            )?,
            run(from_lan, &lan_prog, lan0, inet)?,
            // lan1 has no XDP program: its frames go to the stack.
            run(
                lan_frame(LAN2_HOST, a, &lan1_mac),
                &raw_bpf::load_xdp_pass()?,
                lan1,
                inet,
            )?,
            run(lan_frame(LAN_HOST, b, &lan0_mac), &lan_prog, lan0, inet)?,
        ],
        xdp_counter: "xdp_fwd_tx",
        tc_counter: "fast_tx",
        daemon_field: "tx_packets",
    };
    let mut bench = Bench {
        gw: &gw,
        gw_ns: t.gw.name.clone(),
        userspace_addr: b,
        repeat: REPEAT,
    };

    // VPN_BENCH_PROFILE=plain|xdp|tc|userspace, with `:up` for LAN to WAN:
    // that path alone (else WAN to LAN), 20 long rounds, for `perf record`
    // alongside; no ratios. VPN_BENCH_JIT_DUMP=FILE also writes the JIT
    // image of vpn-ctl's program for that direction (docs/performance.md).
    if let Ok(only) = std::env::var("VPN_BENCH_PROFILE") {
        let (only, dir, prog, _receivers) = match only.strip_suffix(":up") {
            Some(p) => (
                p.to_owned(),
                &up,
                &lan_prog,
                vec![receiver(&t.inet, "gw0")?],
            ),
            None => (
                only,
                &down,
                &wan_prog,
                vec![receiver(&t.lan, "eth0")?, receiver(&lan2, "eth0")?],
            ),
        };
        if let Some(file) = std::env::var_os("VPN_BENCH_JIT_DUMP") {
            std::fs::write(&file, raw_bpf::jited_image(prog)?)?;
        }
        bench.repeat = 20 * REPEAT;
        let path = Path::ALL
            .into_iter()
            .find(|p| format!("{p:?}").eq_ignore_ascii_case(&only))
            .ok_or_else(|| anyhow::anyhow!("VPN_BENCH_PROFILE: no path {only}"))?;
        for _ in 0..20 {
            println!("{}: {:.0} packets/s", path.name(), bench.round(dir, path)?);
        }
        return Ok(());
    }
    // The programs alone first: nothing is sent, so no receiver is needed.
    let programs = json!({
        "wan_to_lan": bench.measure_programs(&down)?,
        "lan_to_wan": bench.measure_programs(&up)?,
    });
    if std::env::var_os("VPN_BENCH_PROGRAMS_ONLY").is_some() {
        return Ok(());
    }
    let down_json = {
        let _receivers = [receiver(&t.lan, "eth0")?, receiver(&lan2, "eth0")?];
        bench.measure(&down)?
    };
    // The internet router's side of the WAN drops in XDP only meanwhile
    // (the calls' control traffic crosses it otherwise).
    let up_json = {
        let _receiver = receiver(&t.inet, "gw0")?;
        bench.measure(&up)?
    };
    bench::write_json(
        "forward",
        json!({
            "wan_to_lan": down_json,
            "lan_to_wan": up_json,
            "programs_ns_per_packet": programs,
            "inner_bytes": INNER,
            "repeat": REPEAT,
            "rounds": ROUNDS,
        }),
    )?;
    Ok(())
}
