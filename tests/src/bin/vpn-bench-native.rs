//! `cargo xtask bench native`: the native protocol against a real peer, in
//! one run on the standard topology:
//!
//! - iperf3 TCP from a client host (c1) to the LAN through our tunnel with
//!   AES-256-GCM and with ChaCha20-Poly1305 (`vpn-ctl connect` -> `vpn-ctl
//!   up`), and through boringtun (userspace WireGuard, ChaCha20-Poly1305)
//!   between the same two namespaces at the same MTU (1420), interleaved
//!   round by round: median, spread and the ratios;
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
        _ => orchestrate(),
    }
}

/// One iperf3 run from c1 to `dst` on the LAN, in Mbit/s.
fn iperf_once(t: &Topology, dst: &str, what: &str) -> anyhow::Result<f64> {
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
            "timeout 30 iperf3 -c {dst} -t {IPERF_SECS} -O 1 -J"
        ));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let refused = j["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused"));
        (o.status.success() && !refused).then_some(j)
    });
    let _ = server.wait();
    let bps = j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .filter(|b| b.is_finite() && *b > 0.0)
        .ok_or_else(|| anyhow::anyhow!("iperf3 through {what}: {}", j["error"]))?;
    Ok(bps / 1e6)
}

/// Median, minimum and maximum.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
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
    must_sh(
        ns,
        &format!(
            "echo {key} > /tmp/{name}.key && wg set {name} private-key /tmp/{name}.key \
             peer {peer_pub} allowed-ips 0.0.0.0/0 {extra} && \
             ip addr add {addr}/24 dev {name} && ip link set {name} up"
        ),
    );
    child
}

/// A peer process ended with the run, also on an early error.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// boringtun's address on the LAN host: its own route on c1, so both
/// tunnels stay up and the rounds interleave.
const LAN_HOST_WG: &str = "172.16.10.3";

fn orchestrate() -> anyhow::Result<()> {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, USER, PASSWORD, None);
    let psk = gateway_creds(&gw);

    // boringtun between the same namespaces, the gateway forwarding to the
    // LAN; MTU 1420 like the native tunnel.
    let (ka, kb) = (must_sh(&t.c1, "wg genkey"), must_sh(&t.gw, "wg genkey"));
    let (ka, kb) = (ka.trim(), kb.trim());
    let pa = must_sh(&t.c1, &format!("echo {ka} | wg pubkey"));
    let pb = must_sh(&t.gw, &format!("echo {kb} | wg pubkey"));
    // Distinct names: their UAPI sockets share /var/run/wireguard across namespaces.
    let _wgb = Reap(boringtun(&t.gw, "wgb", "10.77.0.1", kb, pa.trim(), ""));
    wgb_listen(&t.gw);
    let _wga = Reap(boringtun(
        &t.c1,
        "wga",
        "10.77.0.2",
        ka,
        pb.trim(),
        &format!("endpoint {GW_WAN}:51820 persistent-keepalive 5"),
    ));
    for (ns, dev) in [(&t.c1, "wga"), (&t.gw, "wgb")] {
        must_sh(ns, &format!("ip link set {dev} mtu 1420"));
    }
    must_sh(&t.lan, &format!("ip addr add {LAN_HOST_WG}/24 dev eth0"));
    must_sh(&t.c1, &format!("ip route add {LAN_HOST_WG}/32 dev wga"));
    wait::until("the WireGuard tunnel", Duration::from_secs(20), || {
        t.c1.sh(&format!("ping -c 1 -W 1 {LAN_HOST_WG}"))
            .status
            .success()
            .then_some(())
    });

    // Interleaved: each round measures every tunnel once.
    let configs = ["aes-256-gcm", "chacha20-poly1305", "boringtun"];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..ROUNDS {
        for (i, what) in configs.iter().enumerate() {
            let mbps = if *what == "boringtun" {
                iperf_once(&t, LAN_HOST_WG, what)?
            } else {
                let mut c = Client::start(&t.c1, USER, PASSWORD, &psk, &["--cipher", what]);
                c.wait_connected();
                let r = iperf_once(&t, LAN_HOST, what);
                c.stop();
                r?
            };
            results[i].push(mbps);
        }
    }
    let (aes, chacha, bt) = (stats(&results[0]), stats(&results[1]), stats(&results[2]));

    // Handshakes per second, from c1.
    let out =
        t.c1.cmd(std::env::current_exe()?.to_str().unwrap())
            .args(["handshakes", &psk.psk, &psk.key])
            .output()?;
    anyhow::ensure!(
        out.status.success(),
        "handshake bench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;

    println!(
        "native protocol: iperf3 TCP c1 -> LAN through the gateway, {ROUNDS} interleaved rounds of {IPERF_SECS} s, MTU 1420 (median [min-max] Mbit/s)"
    );
    for (name, (m, lo, hi)) in [
        ("vpn-ctl native, aes-256-gcm", aes),
        ("vpn-ctl native, chacha20-poly1305", chacha),
        ("boringtun 0.7 (chacha20-poly1305)", bt),
    ] {
        println!("  {name:<34} {m:>8.0}  [{lo:.0}-{hi:.0}]");
    }
    println!(
        "  ratio native aes / boringtun:      {:>8.2}  (issue 15's goal: >= 3)",
        aes.0 / bt.0
    );
    println!(
        "  ratio native chacha / boringtun:   {:>8.2}  (same cipher on both sides)",
        chacha.0 / bt.0
    );
    println!(
        "  handshakes per second ({HANDSHAKE_THREADS} clients): {rate:>10.0}  (repeat logins: the login cache spares argon2id, #42)"
    );
    let json = serde_json::json!({
        "rounds": ROUNDS,
        "iperf_secs": IPERF_SECS,
        "mbit_per_s": {
            "native_aes_256_gcm": results[0],
            "native_chacha20_poly1305": results[1],
            "boringtun": results[2],
        },
        "handshakes_per_s": rate,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("native.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}

fn wgb_listen(gw: &Netns) {
    must_sh(gw, "wg set wgb listen-port 51820");
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
    println!("{:.0}", done.load(Ordering::Relaxed) as f64 / secs);
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
