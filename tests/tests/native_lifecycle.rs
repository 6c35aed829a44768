//! The native protocol over a session's life, on short timers: rekeys and
//! keepalives with traffic flowing, a silent client expired and its address
//! freed, ChaCha20-Poly1305 end to end, and the session limit. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    native_client::{add_user, gateway_creds, Client},
    topology::{Topology, LAN_HOST},
    wait,
};

/// `ping` packet loss in percent (from its summary line).
fn loss(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.split(", ").find(|p| p.ends_with("packet loss")))
        .and_then(|p| p.trim_end_matches("% packet loss").parse().ok())
        .unwrap_or_else(|| panic!("no loss in ping output:\n{out}"))
}

#[test]
fn rekeys_and_keepalives_on_short_timers_lose_no_packet() {
    let t = Topology::build();
    let gw = Gateway::start(
        &t.gw,
        "[native]\nkeepalive_secs = 1\nrekey_secs = 10\n[log]\nlevel = \"debug\"\n",
    );
    add_user(&gw, "alice", "alice-password-1", None);
    let mut c = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    c.wait_connected();
    // 25 s of traffic: two rekeys at least.
    let out = t.c1.sh(&format!("ping -c 125 -i 0.2 -W 2 {LAN_HOST}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(loss(&text), 0.0, "{text}");
    let rekeys = gw.log().matches("rekeyed (key").count();
    assert!(rekeys >= 2, "{rekeys} rekeys in 25 s:\n{}", gw.log());
    // Idle longer than three keepalive intervals: keepalives hold it up.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(gw.sessions().len(), 1);
    assert!(t
        .c1
        .sh(&format!("ping -c 1 -W 2 {LAN_HOST}"))
        .status
        .success());
}

#[test]
fn a_silent_client_expires_and_its_address_is_free_again() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[native]\nkeepalive_secs = 1\n");
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-1", None);
    let creds = gateway_creds(&gw);
    let mut a = Client::start(&t.c1, "alice", "alice-password-1", &creds, &[]);
    let addr = a.wait_connected();
    a.kill();
    // Three silent keepalive intervals (and a second of grace).
    wait::until(
        "the silent session to expire",
        Duration::from_secs(15),
        || gw.sessions().is_empty().then_some(()),
    );
    assert!(gw.log().contains("ended, expired"), "{}", gw.log());
    let mut b = Client::start(&t.c3, "bob", "bob-password-1", &creds, &[]);
    assert_eq!(
        b.wait_connected(),
        addr,
        "the expired session's address is free"
    );
}

#[test]
fn chacha20_poly1305_end_to_end() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, "alice", "alice-password-1", None);
    let mut c = Client::start(
        &t.c1,
        "alice",
        "alice-password-1",
        &gateway_creds(&gw),
        &["--cipher", "chacha20-poly1305"],
    );
    c.wait_connected();
    let out = t.c1.sh(&format!("ping -c 5 -i 0.2 -W 2 {LAN_HOST}"));
    assert_eq!(loss(&String::from_utf8_lossy(&out.stdout)), 0.0);
    let rows = gw.sessions();
    assert_eq!(rows[0]["encryption"], "chacha20-poly1305", "{rows:?}");
}

#[test]
fn the_session_limit_refuses_clearly_while_the_sessions_in_place_work() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\nmax_sessions = 1\n");
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-1", None);
    let creds = gateway_creds(&gw);
    let mut a = Client::start(&t.c1, "alice", "alice-password-1", &creds, &[]);
    a.wait_connected();
    let mut b = Client::start(&t.c3, "bob", "bob-password-1", &creds, &["--no-reconnect"]);
    assert!(!b.wait_exit(Duration::from_secs(20)).success());
    assert!(
        b.stderr().contains("session limit"),
        "bob was told: {}",
        b.stderr()
    );
    assert!(t
        .c1
        .sh(&format!("ping -c 2 -W 2 {LAN_HOST}"))
        .status
        .success());
    assert_eq!(gw.sessions().len(), 1);
}

/// A client killed with SIGKILL leaves its DNS and its route to the
/// gateway behind; its next run undoes them from its journal, and a clean
/// stop after that leaves the host as it was before the first.
#[test]
fn a_killed_client_is_cleaned_up_by_its_next_run() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\ndns = [\"172.16.10.2\"]\n");
    add_user(&gw, "alice", "alice-password-1", None);
    let creds = gateway_creds(&gw);
    let routes_before = t.c1.must("ip -4 route show");
    let mut c = Client::start(
        &t.c1,
        "alice",
        "alice-password-1",
        &creds,
        &["--full-tunnel"],
    );
    let resolv_before = c.resolv_conf();
    c.wait_connected();
    assert!(
        c.resolv_conf().contains("172.16.10.2"),
        "{}",
        c.resolv_conf()
    );
    c.kill();
    // Left behind: the pushed DNS and the host route to the gateway.
    assert!(c.resolv_conf().contains("172.16.10.2"));
    assert_ne!(t.c1.must("ip -4 route show"), routes_before);

    c.restart(&creds);
    c.wait_connected();
    assert!(
        c.stderr().contains("undid") && c.stderr().contains("earlier connect"),
        "stderr:\n{}\nstdout:\n{}",
        c.stderr(),
        c.stdout()
    );
    assert!(c.stop().success());
    assert_eq!(c.resolv_conf(), resolv_before);
    assert_eq!(t.c1.must("ip -4 route show"), routes_before);
}

/// `connect HOST:PORT` to a gateway on another port, the pre-shared key
/// on standard input, and `--no-dns`: connected, the LAN reached, the
/// resolver file untouched.
#[test]
fn host_port_psk_on_stdin_and_no_dns() {
    use std::io::{BufRead as _, Write as _};
    let t = Topology::build();
    let gw = Gateway::start(
        &t.gw,
        "[native]\nport = 7555\n[gateway]\ndns = [\"172.16.10.2\"]\n",
    );
    add_user(&gw, "alice", "alice-password-1", None);
    let creds = gateway_creds(&gw);
    let dir = gw.files.dir.join("client");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!("[paths]\nrun_dir = \"{}/run\"\n", dir.display()),
    )
    .unwrap();
    std::fs::write(dir.join("password"), "alice-password-1\n").unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    let mut child =
        t.c1.cmd(vpn_tests::vpn_ctl_bin().to_str().unwrap())
            .arg("-c")
            .arg(&config)
            .args(["connect", &format!("{}:7555", vpn_tests::topology::GW_WAN)])
            .args([
                "-u",
                "alice",
                "--gateway-key",
                &creds.key,
                "--psk-file",
                "-",
            ])
            .arg("--password-file")
            .arg(dir.join("password"))
            .arg("--resolv-conf")
            .arg(&resolv)
            .args(["--no-dns", "--no-reconnect"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", creds.psk).unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let connected = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("connected to")))
        .expect("a connected line")
        .unwrap();
    assert!(connected.contains(":7555"), "{connected}");
    assert!(t
        .c1
        .sh(&format!("ping -c 2 -W 2 {LAN_HOST}"))
        .status
        .success());
    assert_eq!(
        std::fs::read_to_string(&resolv).unwrap(),
        "nameserver 192.0.2.53\n"
    );
    let st = vpn_tests::netns::terminate(child).expect("exits on SIGTERM");
    assert!(st.success(), "{st}");
}
