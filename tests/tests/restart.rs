//! `vpn-ctl restart` (docs/decisions.md #52): the daemon execs a new image
//! of itself and hands over its sessions. Pings keep running through a
//! native session, a PPTP call with MPPE-128 (userspace) and a plain L2TP
//! call (in-kernel fast path) across it: at most a handful lost, the same
//! sessions after it, no client reconnects. Needs root.
use std::{
    net::Ipv4Addr,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use vpn_tests::{
    call::Call,
    gateway::Gateway,
    ipsec_peer::IpsecCall,
    l2tp_peer::L2tpCall,
    native_client::{add_user, gateway_creds, Client},
    netns::enter_thread,
    packet::icmp_echo,
    pptp_peer::PptpCall,
    restart::{ping_counts, MAX_LOST},
    topology::{Topology, GW_WAN, LAN_HOST},
    wait,
};

const PINGS: u64 = 100;

fn row<'a>(rows: &'a [serde_json::Value], protocol: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {protocol} session in {rows:?}"))
}

/// Echo requests to the LAN host every 50 ms until `stop`.
struct Pinger {
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    /// Returns the call, still up (dropping a PPTP call closes its control
    /// connection).
    thread: std::thread::JoinHandle<Box<dyn Call>>,
}

impl Pinger {
    fn start<C: Call>(
        ns: &str,
        stop: Arc<AtomicBool>,
        connect: impl FnOnce() -> C + Send + 'static,
    ) -> Pinger {
        let (sent, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, a) = (sent.clone(), answered.clone());
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            enter_thread(&ns);
            let mut call = connect();
            let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
            let mut seq = 0u16;
            while !stop.load(Ordering::Relaxed) {
                seq = seq.wrapping_add(1);
                let echo = icmp_echo(call.address().octets(), lan.octets(), 9, seq);
                s.fetch_add(1, Ordering::Relaxed);
                let replies = call.echo(&echo, Duration::from_secs(1));
                let n = replies
                    .iter()
                    .filter(|ip| ip[9] == 1 && ip[20] == 0 && ip[12..16] == lan.octets())
                    .count();
                a.fetch_add(n as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            Box::new(call) as Box<dyn Call>
        });
        Pinger {
            sent,
            answered,
            thread,
        }
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// (sent, answered) once stopped, and the call.
    fn finish(self) -> (u64, u64, Box<dyn Call>) {
        let call = self.thread.join().unwrap();
        (
            self.sent.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
            call,
        )
    }
}

#[test]
fn sessions_keep_passing_traffic_across_a_restart() {
    let t = Topology::build();
    let mut gw = Gateway::start(
        &t.gw,
        "[native]\nkeepalive_secs = 2\n[pptp]\nenabled = true\n[l2tp]\nallow_plain = true\n",
    );
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-1", None);
    add_user(&gw, "carol", "carol-password-1", None);
    let mut native = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    let addr = native.wait_connected();
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pptp = Pinger::start(&t.c1.name, stop.clone(), move || {
        PptpCall::connect(gw_wan, "bob", "bob-password-1", true, 11).unwrap()
    });
    let l2tp = Pinger::start(&t.c1.name, stop.clone(), move || {
        L2tpCall::connect(gw_wan, "carol", "carol-password-1", 21).unwrap()
    });
    add_user(&gw, "dave", "dave-password-1", None);
    let psk = gw.ipsec_psk();
    let ipsec = Pinger::start(&t.c1.name, stop.clone(), move || {
        IpsecCall::connect(gw_wan, &psk, "dave", "dave-password-1", 31).unwrap()
    });
    wait::until("pings through every call", Duration::from_secs(20), || {
        (pptp.answered() >= 5
            && l2tp.answered() >= 5
            && ipsec.answered() >= 5
            && gw.sessions().len() == 4)
            .then_some(())
    });
    let before = gw.sessions();
    let pid = gw.pid();
    assert_eq!(row(&before, "pptp")["encryption"], "mppe-128");
    assert_eq!(row(&before, "l2tp")["fast_path"], true);

    // Native pings through the TUN, the restart in the middle of them.
    let ping =
        t.c1.cmd("ping")
            .args(["-c", &PINGS.to_string(), "-i", "0.1", "-W", "2", LAN_HOST])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    wait::until("native pings to flow", Duration::from_secs(10), || {
        let rows = gw.sessions();
        (row(&rows, "native")["rx_packets"].as_u64().unwrap()
            > row(&before, "native")["rx_packets"].as_u64().unwrap() + 5)
            .then_some(())
    });
    let asked = std::time::Instant::now();
    let said = gw.restart_in_place();
    eprintln!(
        "restart: {:?} from request to the successor's answer",
        asked.elapsed()
    );
    assert!(said.contains("4 of 4 sessions carried over"), "{said}");
    let (p0, l0, i0) = (pptp.answered(), l2tp.answered(), ipsec.answered());
    wait::until(
        "pings through every call after the restart",
        Duration::from_secs(20),
        || {
            (pptp.answered() >= p0 + 20
                && l2tp.answered() >= l0 + 20
                && ipsec.answered() >= i0 + 20)
                .then_some(())
        },
    );
    let out = ping.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (sent, got) = ping_counts(&text);
    eprintln!("native: {got} of {sent} answered across the restart");
    assert!(
        sent - got <= MAX_LOST,
        "native lost {} of {sent}:\n{text}\n{}",
        sent - got,
        gw.log()
    );
    let mut calls = Vec::new();
    for (name, p) in [("pptp", pptp), ("l2tp", l2tp), ("l2tp-ipsec", ipsec)] {
        let (sent, got, call) = p.finish();
        eprintln!("{name}: {got} of {sent} answered across the restart");
        assert!(
            sent - got <= MAX_LOST,
            "{name} lost {} of {sent}\n{}",
            sent - got,
            gw.log()
        );
        calls.push(call);
    }

    // The same process, restarted once, with the same sessions.
    let st = gw.status();
    assert_eq!(st["pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(st["restarts"].as_u64(), Some(1));
    let after = gw.sessions();
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(gw.status()["last_restart"]["carried"], 4);
    for proto in ["native", "pptp", "l2tp", "l2tp-ipsec"] {
        let (b, a) = (row(&before, proto), row(&after, proto));
        assert_eq!(a["id"], b["id"], "{proto}");
        assert_eq!(a["assigned_ip"], b["assigned_ip"], "{proto}");
        assert!(
            a["rx_packets"].as_u64() > b["rx_packets"].as_u64(),
            "{proto}"
        );
    }
    assert_eq!(row(&after, "native")["assigned_ip"], addr.as_str());
    assert_eq!(row(&after, "pptp")["encryption"], "mppe-128");
    // The kernel carried the L2TP call on through its adopted slot.
    let (b, a) = (row(&before, "l2tp"), row(&after, "l2tp"));
    assert_eq!(a["fast_path"], true);
    assert!(a["fast_path_rx_packets"].as_u64() > b["fast_path_rx_packets"].as_u64());
    // The native client never noticed: one connection, no reconnect.
    assert_eq!(
        native.stdout().matches("connected to").count(),
        1,
        "{}",
        native.stdout()
    );
    assert!(gw.log().contains("4 sessions carried over"), "{}", gw.log());
    // A successor restarts like any daemon.
    let said = gw.restart_in_place();
    assert!(said.contains("4 of 4 sessions carried over"), "{said}");
    assert_eq!(gw.status()["restarts"].as_u64(), Some(2));
    t.c1.must(&format!("ping -c 2 -i 0.2 -W 2 {LAN_HOST}"));

    // The successor undoes what its predecessor set up.
    drop(calls);
    native.kill();
    assert!(gw.down().success(), "{}", gw.log());
    assert_restored(&t, &gw);
}

/// Asserts the gateway namespace is as before `up`: no vpn0, no XDP on
/// the WAN, no pins, no NAT table.
fn assert_restored(t: &Topology, gw: &Gateway) {
    let wan = String::from_utf8_lossy(&t.gw.sh("ip -d link show wan0").stdout).into_owned();
    assert!(!wan.contains("xdp"), "XDP still attached: {wan}");
    assert!(!t.gw.sh("ip link show vpn0").status.success());
    assert!(!gw.files.pin_dir.exists(), "pins left behind");
    let nft = String::from_utf8_lossy(&t.gw.sh("nft list tables").stdout).into_owned();
    assert!(!nft.contains("vpn_ctl"), "{nft}");
}

#[test]
fn a_restart_the_new_image_could_not_do_is_refused_and_the_gateway_runs_on() {
    let t = Topology::build();
    let gw = Gateway::start(
        &t.gw,
        "[gateway]\nmax_sessions = 100\n[log]\nlevel = \"debug\"\n",
    );
    add_user(&gw, "alice", "alice-password-1", None);
    let mut native = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    native.wait_connected();
    // A configuration the successor would refuse: checked before anything
    // stops (by `restart` itself, and by the daemon asking the binary on
    // disk), so the restart is refused and nothing changes.
    let good = std::fs::read_to_string(&gw.files.config).unwrap();
    let bad = good.replace("max_sessions = 100", "max_sessions = 0");
    assert_ne!(bad, good);
    std::fs::write(&gw.files.config, bad).unwrap();
    let out = gw.ctl(&["restart"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.max_sessions"), "{err}");
    std::fs::write(&gw.files.config, good).unwrap();
    assert_eq!(gw.status()["restarts"].as_u64(), Some(0));
    assert_eq!(gw.sessions().len(), 1);
    t.c1.must(&format!("ping -c 2 -i 0.2 -W 2 {LAN_HOST}"));
    // With a configuration that reads, the restart goes through.
    let said = gw.restart_in_place();
    assert!(said.contains("1 of 1 sessions carried over"), "{said}");
    t.c1.must(&format!("ping -c 2 -i 0.2 -W 2 {LAN_HOST}"));
    // The programs (still the predecessor's) log through the pinned ring
    // to the successor: a pool source arriving on the WAN is logged.
    let pool = gw.status()["pool"].as_str().unwrap().to_string();
    t.ping_from_pool_address(&pool);
    wait::until(
        "the eBPF log line after the restart",
        Duration::from_secs(10),
        || gw.log().contains("arrived raw on the WAN").then_some(()),
    );
}
