//! `vpn-ctl doctor`: each problem staged in the test topology's gateway
//! namespace is found, with the gateway down and up, and a clean namespace
//! gives no finding. Needs root.
use std::{process::Stdio, time::Duration};

use vpn_tests::{
    gateway::{Gateway, GatewayFiles},
    topology::Topology,
    wait,
};

/// Runs doctor --json: (exit success, the checks that found something).
fn doctor(files: &GatewayFiles, ns: &vpn_tests::netns::Netns) -> (bool, Vec<String>, String) {
    let out = files.ctl(ns, &["doctor", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let checks = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    (out.status.success(), checks, text)
}

#[test]
fn a_clean_namespace_gives_no_finding_down_or_up() {
    let t = Topology::build();
    // A pool inside the LAN's classful network (172.16.0.0/16), so split-
    // tunnel macOS/Linux clients reach the LAN: no `routes` finding.
    let files = GatewayFiles::new(
        &t.gw,
        "[gateway]\npool = \"172.16.99.0/24\"\n[pptp]\nenabled = true\n",
    );
    let (ok, checks, text) = doctor(&files, &t.gw);
    assert!(ok && checks.is_empty(), "{text}");
    let out = files.ctl(&t.gw, &["doctor"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no problems found"));
    let gw = Gateway::start_with(&t.gw, files);
    let (ok, checks, text) = doctor(&gw.files, &t.gw);
    assert!(ok && checks.is_empty(), "running: {text}");
}

#[test]
fn problems_staged_before_start_are_found() {
    let t = Topology::build();
    // The WAN is lan0 here: a private address (NAT in front, for Windows)
    // with a small MTU.
    let files = GatewayFiles::new(
        &t.gw,
        "[gateway]\nwan = \"lan0\"\npool = \"172.16.10.0/25\"\npush_routes = [\"10.20.0.0/16\"]\n\
         [pptp]\nenabled = true\n",
    );
    let state = files.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("secrets.toml"), "psk = \"changeme\"\n").unwrap();
    t.gw.must("iptables -A INPUT -j REJECT --reject-with icmp-host-prohibited");
    t.gw.must("ip route del default");
    t.gw.must("ip link set lan0 mtu 1400");
    // Another program on UDP 500.
    let mut squatter =
        t.gw.cmd("python3")
            .args([
                "-c",
                "import socket, time\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0', 500))\n\
             print('bound', flush=True)\n\
             time.sleep(120)",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(squatter.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "bound");

    let (ok, checks, text) = doctor(&files, &t.gw);
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert!(!ok, "doctor exits non-zero with findings");
    for want in [
        "firewall",
        "ports",
        "default-route",
        "pool",
        "routes",
        "mtu",
        "nat",
        "psk",
    ] {
        assert!(
            checks.iter().any(|c| c == want),
            "no `{want}` finding: {text}"
        );
    }
    assert!(text.contains("blocks GRE"), "{text}");
    assert!(
        text.contains("UDP port 500") && text.contains("python3"),
        "{text}"
    );
    assert!(
        text.contains("AssumeUDPEncapsulationContextOnSendRule"),
        "{text}"
    );
    assert!(text.contains("[native] mtu = "), "{text}");
}

#[test]
fn problems_of_a_running_gateway_are_found() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[xdp]\nmode = \"generic\"\n");
    t.gw.must("sysctl -qw net.ipv4.ip_forward=0");
    t.gw.must("sysctl -qw net.ipv4.conf.all.rp_filter=1");
    let pool: String = gw.status()["pool"].as_str().unwrap().into();
    let client = pool.replace(".0/24", ".2");
    t.gw.must(&format!("ip route add {client}/32 dev lan0"));
    let (ok, checks, text) = doctor(&gw.files, &t.gw);
    assert!(!ok, "{text}");
    // The default pool (10.99.0.0/24) is outside the LAN's classful network.
    for want in ["forwarding", "rp_filter", "xdp", "routes"] {
        assert!(
            checks.iter().any(|c| c == want),
            "no `{want}` finding: {text}"
        );
    }
    // Our own sockets are not "another program".
    assert!(!checks.iter().any(|c| c == "ports"), "{text}");
    // Fixed, the findings go away.
    t.gw.must("sysctl -qw net.ipv4.ip_forward=1");
    t.gw.must(&format!("ip route del {client}/32 dev lan0"));
    wait::until("the findings to clear", Duration::from_secs(10), || {
        let (_, checks, _) = doctor(&gw.files, &t.gw);
        (!checks.iter().any(|c| c == "forwarding" || c == "rp_filter")).then_some(())
    });
}
