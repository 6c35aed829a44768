//! `cargo xtask bench native`: the native protocol against a real peer, in
//! one run on the standard topology:
//!
//! - iperf3 between a client host (c1) and the LAN: TCP one stream up,
//!   four streams up and one stream down (Mbit/s), and unpaced 64-byte UDP
//!   up (packets/s received): forwarded plainly
//!   through the gateway (no tunnel: the ceiling), through our tunnel with
//!   AES-256-GCM and with ChaCha20-Poly1305 (`vpn-ctl connect` -> `vpn-ctl
//!   up`), and through boringtun and wireguard-go (userspace WireGuard,
//!   ChaCha20-Poly1305) between the same two namespaces at the same MTU
//!   (1420), interleaved round by round: median, spread and the ratios.
//!   The native session's byte counters must cover what iperf3 reported
//!   (the counters are checked against the measurement);
//! - handshakes per second (TCP connect, Noise handshake, login, WELCOME).
//!
//! Both ends share the machine's cores: read the ratios, not the absolutes.
//! Results also go to target/bench/native.json; a failed measurement ends
//! the run with an error, never a 0 or a NaN.
use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use vpn_proto::native::{
    crypto::{self, Cipher},
    handshake::{ClientHandshake, ClientStep},
    messages::AuthRequest,
};
use vpn_tests::{
    bench::{self, Reap, Stats},
    gateway::Gateway,
    native_client::{add_user, gateway_creds, Client},
    netns::Netns,
    topology::{Topology, GW_WAN, LAN_HOST},
    wait,
};

const ROUNDS: usize = 3;
const IPERF_SECS: u32 = 4;
const HANDSHAKE_SECS: u64 = 3;
const HANDSHAKE_THREADS: usize = 4;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password-1";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("handshakes") => handshakes(&args[2], &args[3]),
        Some("hold") => hold(&args[2], &args[3]),
        _ => orchestrate(),
    }
}

/// The iperf3 runs of a round, each on every path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One TCP stream c1 -> LAN.
    Up,
    /// Four parallel streams c1 -> LAN.
    Up4,
    /// One stream LAN -> c1 (iperf3 -R).
    Down,
    /// 64-byte UDP datagrams c1 -> LAN, unpaced: packets/s received.
    Udp64,
}

const MODES: [Mode; 4] = [Mode::Up, Mode::Up4, Mode::Down, Mode::Udp64];

impl Mode {
    fn args(self) -> &'static str {
        match self {
            Mode::Up => "",
            Mode::Up4 => "-P 4",
            Mode::Down => "-R",
            Mode::Udp64 => "-u -l 64 -b 0",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Up => "up, 1 stream",
            Mode::Up4 => "up, 4 streams",
            Mode::Down => "down, 1 stream",
            Mode::Udp64 => "up, 64-byte UDP (packets/s received)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mode::Up => "up_1",
            Mode::Up4 => "up_4",
            Mode::Down => "down_1",
            Mode::Udp64 => "udp_64_packets_per_s",
        }
    }

    /// Mbit/s, or for UDP packets/s, from the receiver's side.
    fn value(self, received: &serde_json::Value) -> Option<f64> {
        let v = match self {
            Mode::Udp64 => received["bytes"].as_f64()? / 64.0 / received["seconds"].as_f64()?,
            _ => received["bits_per_second"].as_f64()? / 1e6,
        };
        Some(v).filter(|v| v.is_finite() && *v > 0.0)
    }
}

/// One iperf3 run between c1 and `dst` on the LAN: Mbit/s (packets/s for
/// UDP) and bytes received.
fn iperf_once(t: &Topology, dst: &str, what: &str, mode: Mode) -> anyhow::Result<(f64, u64)> {
    // Bounded: a server whose client never came must not hang the run.
    let mut server: Child = t
        .lan
        .cmd("timeout")
        .args(["60", "iperf3", "-s", "-1", "-B", dst])
        .stdout(Stdio::null())
        .spawn()?;
    // Until the server listens, iperf3 reports "connection refused" (in
    // its JSON, whatever its exit status): try again.
    let j = wait::until("iperf3 to connect", Duration::from_secs(10), || {
        let o = t.c1.sh(&format!(
            "timeout 30 iperf3 -c {dst} -t {IPERF_SECS} -O 1 -J {}",
            mode.args()
        ));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let refused = j["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused"));
        (o.status.success() && !refused).then_some(j)
    });
    let _ = server.wait();
    let value = mode
        .value(&j["end"]["sum_received"])
        .ok_or_else(|| anyhow::anyhow!("iperf3 {} through {what}: {}", mode.name(), j["error"]))?;
    let bytes = j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    Ok((value, bytes))
}

fn must_sh(ns: &Netns, cmd: &str) -> String {
    ns.must(cmd)
}

/// boringtun in `ns` as interface `name`, configured with `wg`.
fn boringtun(ns: &Netns, name: &str, addr: &str, key: &str, peer_pub: &str, extra: &str) -> Child {
    let child = ns
        .cmd("boringtun-cli")
        .args([name, "--foreground", "--disable-drop-privileges"])
        .env("WG_SUDO", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("boringtun-cli (cargo install boringtun-cli)");
    wait::until(
        &format!("boringtun's {name}"),
        Duration::from_secs(10),
        || {
            ns.sh(&format!("ip link show {name}"))
                .status
                .success()
                .then_some(())
        },
    );
    configure_wg(ns, name, addr, key, peer_pub, extra);
    child
}

/// wireguard-go in `ns` as interface `name`, configured with `wg`.
fn wireguard_go(
    ns: &Netns,
    name: &str,
    addr: &str,
    key: &str,
    peer_pub: &str,
    extra: &str,
) -> Child {
    let child = ns
        .cmd("wireguard-go")
        .args(["-f", name])
        // It refuses to run on Linux (which has the kernel module) without this.
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wireguard-go (Debian package wireguard-go)");
    wait::until(
        &format!("wireguard-go's {name}"),
        Duration::from_secs(10),
        || {
            ns.sh(&format!("wg show {name}"))
                .status
                .success()
                .then_some(())
        },
    );
    configure_wg(ns, name, addr, key, peer_pub, extra);
    child
}

fn configure_wg(ns: &Netns, name: &str, addr: &str, key: &str, peer_pub: &str, extra: &str) {
    must_sh(
        ns,
        &format!(
            "echo {key} > /tmp/{name}.key && wg set {name} private-key /tmp/{name}.key \
             peer {peer_pub} allowed-ips 0.0.0.0/0 {extra} && \
             ip addr add {addr}/24 dev {name} && ip link set {name} mtu 1420 up"
        ),
    );
}

/// A userspace WireGuard pair between c1 and the gateway (distinct names:
/// their UAPI sockets share /var/run/wireguard across namespaces),
/// reaching `lan_addr`, its own address on the LAN host, so every tunnel
/// stays up and the rounds interleave.
struct WgPair {
    _peers: (Reap, Reap),
    lan_addr: &'static str,
}

type Spawn = fn(&Netns, &str, &str, &str, &str, &str) -> Child;

fn wg_pair(
    t: &Topology,
    spawn: Spawn,
    names: (&str, &str),
    net: u8,
    port: u16,
    lan_addr: &'static str,
) -> WgPair {
    let (ka, kb) = (must_sh(&t.c1, "wg genkey"), must_sh(&t.gw, "wg genkey"));
    let (ka, kb) = (ka.trim(), kb.trim());
    let pa = must_sh(&t.c1, &format!("echo {ka} | wg pubkey"));
    let pb = must_sh(&t.gw, &format!("echo {kb} | wg pubkey"));
    let server = Reap(spawn(
        &t.gw,
        names.1,
        &format!("10.{net}.0.1"),
        kb,
        pa.trim(),
        "",
    ));
    must_sh(&t.gw, &format!("wg set {} listen-port {port}", names.1));
    let client = Reap(spawn(
        &t.c1,
        names.0,
        &format!("10.{net}.0.2"),
        ka,
        pb.trim(),
        &format!("endpoint {GW_WAN}:{port} persistent-keepalive 5"),
    ));
    must_sh(&t.lan, &format!("ip addr add {lan_addr}/24 dev eth0"));
    must_sh(
        &t.c1,
        &format!("ip route add {lan_addr}/32 dev {}", names.0),
    );
    wait::until(
        &format!("the tunnel {}", names.0),
        Duration::from_secs(20),
        || {
            t.c1.sh(&format!("ping -c 1 -W 1 {lan_addr}"))
                .status
                .success()
                .then_some(())
        },
    );
    WgPair {
        _peers: (server, client),
        lan_addr,
    }
}

/// The plain path's address on the LAN host: routed from c1 through the
/// internet host and the gateway, no tunnel.
const LAN_HOST_PLAIN: &str = "172.16.10.5";

fn orchestrate() -> anyhow::Result<()> {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\nmax_sessions_per_user = 1000\n");
    add_user(&gw, USER, PASSWORD, None);
    let psk = gateway_creds(&gw);
    if std::env::var("VPN_BENCH_NATIVE").as_deref() == Ok("handshakes") {
        // Only the handshake rates (development).
        let (rate, per_core) = handshake_rates(&t, &gw, &psk)?;
        println!("  handshakes per second:             {rate:>10.0}");
        println!("  per second of daemon CPU:          {per_core:>10.0}");
        return Ok(());
    }

    let boringtun = wg_pair(&t, boringtun, ("wga", "wgb"), 77, 51820, "172.16.10.3");
    let wggo = wg_pair(&t, wireguard_go, ("wgc", "wgd"), 78, 51821, "172.16.10.4");
    must_sh(&t.lan, &format!("ip addr add {LAN_HOST_PLAIN}/24 dev eth0"));
    must_sh(
        &t.inet,
        &format!("ip route add {LAN_HOST_PLAIN}/32 via {GW_WAN}"),
    );

    // Interleaved: each round measures every path once.
    let configs = [
        "plain",
        "aes-256-gcm",
        "chacha20-poly1305",
        "boringtun",
        "wireguard-go",
    ];
    // results[mode][path]: Mbit/s per round.
    let mut results = vec![vec![Vec::new(); configs.len()]; MODES.len()];
    for _ in 0..ROUNDS {
        for (i, what) in configs.iter().enumerate() {
            let per_mode: Vec<f64> = match *what {
                "plain" => each_mode(|m| Ok(iperf_once(&t, LAN_HOST_PLAIN, what, m)?.0))?,
                "boringtun" => each_mode(|m| Ok(iperf_once(&t, boringtun.lan_addr, what, m)?.0))?,
                "wireguard-go" => each_mode(|m| Ok(iperf_once(&t, wggo.lan_addr, what, m)?.0))?,
                cipher => {
                    let mut c = Client::start(&t.c1, USER, PASSWORD, &psk, &["--cipher", cipher]);
                    let addr = c.wait_connected();
                    let r = each_mode(|m| native_round(&t, &gw, cipher, addr.trim(), m));
                    c.stop();
                    r?
                }
            };
            for (m, mbps) in per_mode.into_iter().enumerate() {
                results[m][i].push(mbps);
            }
        }
    }
    let stats: Vec<Vec<Stats>> = results
        .iter()
        .zip(MODES)
        .map(|(per_path, mode)| {
            configs
                .iter()
                .zip(per_path)
                .map(|(n, r)| Stats::of(&format!("{n}, {}", mode.name()), r))
                .collect::<anyhow::Result<_>>()
        })
        .collect::<anyhow::Result<_>>()?;

    let per_session_kib = held_memory(&t, &gw, &psk)?;

    let (rate, per_core) = handshake_rates(&t, &gw, &psk)?;

    println!(
        "native protocol: iperf3 between c1 and the LAN through the gateway, {ROUNDS} interleaved rounds of {IPERF_SECS} s, MTU 1420 (median [min-max] Mbit/s, UDP packets/s)"
    );
    for (mode, stats) in MODES.iter().zip(&stats) {
        let [plain, aes, chacha, bt, wgo] = &stats[..] else {
            unreachable!("one row per configuration")
        };
        println!(" {}:", mode.name());
        for (name, st) in [
            ("plain forwarding, no tunnel", plain),
            ("vpn-ctl native, aes-256-gcm", aes),
            ("vpn-ctl native, chacha20-poly1305", chacha),
            ("boringtun 0.7 (chacha20-poly1305)", bt),
            ("wireguard-go (chacha20-poly1305)", wgo),
        ] {
            println!("  {name:<34} {}", st.show(0));
        }
        let ratios = [
            ("native aes / boringtun", aes, bt, "(issue 15's goal: >= 3)"),
            (
                "native chacha / boringtun",
                chacha,
                bt,
                "(same cipher on both sides)",
            ),
            ("native aes / wireguard-go", aes, wgo, "(goal: > 1)"),
            ("native aes / plain", aes, plain, "(goal: >= 0.3)"),
        ];
        // The TCP goals do not apply to 64-byte UDP: its first ratio only.
        let shown = if *mode == Mode::Udp64 {
            1
        } else {
            ratios.len()
        };
        for (name, a, b, goal) in &ratios[..shown] {
            let goal = if shown == 1 { "" } else { goal };
            println!(
                "  ratio {:<28} {:>8.2}  {goal}",
                format!("{name}:"),
                bench::ratio(a, b)
            );
        }
    }
    println!(
        "  handshakes per second ({HANDSHAKE_THREADS} clients): {rate:>10.0}  (repeat logins: the login cache spares argon2id, #42)"
    );
    println!(
        "  handshakes per second of daemon CPU: {per_core:>8.0}  (issue 15's goal: >= 5000 on one core; clients share the cores)"
    );
    println!(
        "  daemon memory per held session:    {per_session_kib:>8.1} KiB  ({HELD} sessions; target <= 4 KiB beyond crypto state)"
    );
    let mut rows = serde_json::Map::new();
    for (mode, stats) in MODES.iter().zip(&stats) {
        let mut per_path = serde_json::Map::new();
        for (n, st) in configs.iter().zip(stats) {
            per_path.insert(n.to_string(), st.json());
        }
        rows.insert(mode.key().to_string(), per_path.into());
    }
    bench::write_json(
        "native",
        serde_json::json!({
            "rounds": ROUNDS,
            "iperf_secs": IPERF_SECS,
            "mtu": 1420,
            "iperf3": rows,
            "handshakes_per_s": rate,
            "handshakes_per_daemon_cpu_s": per_core,
            "held_sessions": HELD,
            "daemon_kib_per_held_session": per_session_kib,
        }),
    )?;
    Ok(())
}

/// `f` for every mode, in order.
fn each_mode(mut f: impl FnMut(Mode) -> anyhow::Result<f64>) -> anyhow::Result<Vec<f64>> {
    MODES.iter().map(|&m| f(m)).collect()
}

/// One iperf3 run through the native tunnel; the session's byte counter of
/// that direction must cover what iperf3 counted (payload without IP and
/// TCP headers, and without the omitted first second, hence the loose
/// upper bound).
fn native_round(
    t: &Topology,
    gw: &Gateway,
    cipher: &str,
    addr: &str,
    mode: Mode,
) -> anyhow::Result<f64> {
    let counter = if mode == Mode::Down {
        "tx_bytes"
    } else {
        "rx_bytes"
    };
    // This client's session (an earlier one may still be closing).
    let count = |gw: &Gateway| {
        gw.sessions()
            .iter()
            .find(|s| s["assigned_ip"] == addr && s["protocol"] == "native")
            .and_then(|s| s[counter].as_u64())
            .unwrap_or(0)
    };
    let before = count(gw);
    let (mbps, bytes) = iperf_once(t, LAN_HOST, cipher, mode)?;
    let counted = bench::settled(|| count(gw)).saturating_sub(before);
    // UDP: what the session took may not all have reached the LAN
    // host's socket, so only the lower bound holds.
    let most = if mode == Mode::Udp64 {
        u64::MAX
    } else {
        2 * bytes + 1_000_000
    };
    anyhow::ensure!(
        counted >= bytes && counted <= most,
        "{cipher}, {}: the session counted {counted} bytes ({counter}), iperf3 {bytes}",
        mode.name()
    );
    Ok(mbps)
}

/// Sessions held open for the memory figure.
const HELD: usize = 200;

/// The daemon's resident memory (KiB).
/// Full handshakes from c1 for a few seconds: handshakes per second, and
/// per second of CPU the daemon used meanwhile (its utime + stime), which
/// is the rate one core of the gateway sustains: the clients' own crypto
/// runs on the same two cores and would otherwise be counted against it.
fn handshake_rates(
    t: &Topology,
    gw: &Gateway,
    psk: &vpn_tests::native_client::Creds,
) -> anyhow::Result<(f64, f64)> {
    let pid = u64::from(gw.pid());
    let cpu0 = daemon_cpu_secs(pid)?;
    let out =
        t.c1.cmd(std::env::current_exe()?.to_str().unwrap())
            .args(["handshakes", &psk.psk, &psk.key])
            .output()?;
    let cpu = daemon_cpu_secs(pid)? - cpu0;
    anyhow::ensure!(
        out.status.success(),
        "handshake bench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let (count, secs): (f64, f64) = (
        it.next().unwrap_or("0").parse()?,
        it.next().unwrap_or("0").parse()?,
    );
    let rate = bench::measured("handshakes/s", count / secs)?;
    let per_core = bench::measured("handshakes per daemon CPU second", count / cpu)?;
    Ok((rate, per_core))
}

/// User plus system CPU seconds the process has used.
fn daemon_cpu_secs(pid: u64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces): state is the 3rd.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("odd /proc/{pid}/stat"))?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

fn daemon_rss(pid: u64) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// What a held session costs the daemon: its RSS before and after HELD
/// logins that stay (each a full handshake, then no BYE), per session.
fn held_memory(
    t: &Topology,
    gw: &Gateway,
    psk: &vpn_tests::native_client::Creds,
) -> anyhow::Result<f64> {
    let settle = |n: usize| {
        wait::until("the sessions to settle", Duration::from_secs(60), || {
            (gw.sessions().len() == n).then_some(())
        })
    };
    settle(0);
    let pid = gw.status()["pid"].as_u64().unwrap_or(0);
    let before = daemon_rss(pid)?;
    let out =
        t.c1.cmd(std::env::current_exe()?.to_str().unwrap())
            .args(["hold", &psk.psk, &psk.key])
            .output()?;
    anyhow::ensure!(
        out.status.success(),
        "hold: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    settle(HELD);
    let after = daemon_rss(pid)?;
    bench::measured(
        "daemon memory per held session",
        after.saturating_sub(before) as f64 / HELD as f64,
    )
}

/// HELD logins from one client, left open (the gateway keeps each session
/// until its keepalive deadline).
fn hold(psk_text: &str, key: &str) -> anyhow::Result<()> {
    let psk = crypto::noise_psk(psk_text);
    let key = vpn_ctl::secrets::decode_key(key)?;
    let server: SocketAddr = format!("{GW_WAN}:7443").parse()?;
    for _ in 0..HELD {
        let auth = AuthRequest {
            user: USER.into(),
            password: zeroize::Zeroizing::new(PASSWORD.into()),
            want_ip: None,
        };
        one_handshake(server, &psk, &key, auth)?;
    }
    Ok(())
}

/// Full handshakes (TCP connect to WELCOME) from several threads for a few
/// seconds; prints handshakes per second. Each thread asks for its own
/// earlier address, so each login takes over that thread's previous session
/// instead of filling the gateway's pool.
fn handshakes(psk_text: &str, key: &str) -> anyhow::Result<()> {
    let psk = crypto::noise_psk(psk_text);
    let key = vpn_ctl::secrets::decode_key(key)?;
    let server: SocketAddr = format!("{GW_WAN}:7443").parse()?;
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(HANDSHAKE_SECS);
    let threads: Vec<_> = (0..HANDSHAKE_THREADS)
        .map(|_| {
            let (done, psk) = (done.clone(), psk.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut want: Option<Ipv4Addr> = None;
                while Instant::now() < end {
                    let auth = AuthRequest {
                        user: USER.into(),
                        password: zeroize::Zeroizing::new(PASSWORD.into()),
                        want_ip: want,
                    };
                    want = Some(one_handshake(server, &psk, &key, auth)?);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{} {secs}", done.load(Ordering::Relaxed));
    Ok(())
}

fn one_handshake(
    server: SocketAddr,
    psk: &[u8; 32],
    key: &[u8; 32],
    auth: AuthRequest,
) -> anyhow::Result<Ipv4Addr> {
    let mut conn = TcpStream::connect(server)?;
    conn.set_nodelay(true)?;
    let (mut hs, first) = ClientHandshake::start(psk, key, auth, &[Cipher::Aes256Gcm]);
    conn.write_all(&first)?;
    let mut buf = [0u8; 2048];
    loop {
        while let Some(step) = hs.poll()? {
            match step {
                ClientStep::Send(b) => conn.write_all(&b)?,
                ClientStep::Established(_, w) => return Ok(w.address),
            }
        }
        let n = conn.read(&mut buf)?;
        anyhow::ensure!(n > 0, "the gateway closed the connection");
        hs.handle_bytes(&buf[..n]);
    }
}
