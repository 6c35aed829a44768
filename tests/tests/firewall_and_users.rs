//! Host-firewall detection and opening, and the user database CLI. Needs root.
use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use vpn_tests::{
    gateway::{Gateway, GatewayFiles},
    netns::Netns,
    snapshot::Snapshot,
    topology::{Topology, GW_WAN},
    wait,
};

const REJECT: &str = "iptables -A INPUT -j REJECT --reject-with icmp-host-prohibited";

#[test]
fn a_trailing_reject_rule_is_reported_in_one_line() {
    let t = Topology::build();
    t.gw.must(REJECT);
    let gw = Gateway::start(&t.gw, "");
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("blocks UDP port 1701"))
        .unwrap_or_else(|| panic!("no firewall warning in:\n{log}"));
    assert!(
        line.contains("REJECT --reject-with icmp-host-prohibited"),
        "{line}"
    );
    assert!(line.contains("open_ports"), "{line}");
    assert!(gw.status()["firewall"].as_array().unwrap().len() >= 5);
    // Reported, not changed.
    assert!(!t.gw.must("iptables -S INPUT").contains("vpn-ctl"));
}

#[test]
fn open_ports_inserts_rules_that_work_and_removes_them() {
    let t = Topology::build();
    t.gw.must(REJECT);
    let files = GatewayFiles::new(&t.gw, "");
    let before = Snapshot::take(&t.gw, &files.pin_dir);
    let mut gw = Gateway::start(&t.gw, "[firewall]\nopen_ports = true");
    let rules = t.gw.must("iptables -S INPUT");
    assert!(
        rules.contains("--dport 1701") && rules.contains("vpn-ctl"),
        "{rules}"
    );
    // The hole is real: datagrams reach the L2TP socket despite the REJECT.
    t.inet.must(&format!("echo probe > /dev/udp/{GW_WAN}/1701"));
    wait::until(
        "the datagram at the L2TP socket",
        Duration::from_secs(20),
        || {
            let s = gw.status();
            let l2tp = s["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["service"] == "l2tp")
                .cloned()
                .unwrap();
            (l2tp["received"].as_u64().unwrap() >= 1).then_some(())
        },
    );
    gw.down();
    let after = Snapshot::take(&t.gw, &gw.files.pin_dir);
    assert!(before == after, "residue:\n{}", before.diff(&after));
}

#[test]
fn users_add_list_del_never_show_passwords() {
    let ns = Netns::new(format!("{}u", vpn_tests::netns::unique_prefix()));
    let files = GatewayFiles::new(&ns, "");
    let pw = files.dir.join("pw");
    std::fs::write(&pw, "s3cret-horse-battery\n").unwrap();
    let pw = pw.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = files.ctl(&ns, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["users", "add", "alice", "--password-file", pw]);
    ok(&[
        "users",
        "add",
        "bob",
        "--password-file",
        pw,
        "--ip",
        "10.99.0.7",
    ]);
    let out = files.ctl(&ns, &["users", "add", "alice", "--password-file", pw]);
    assert!(!out.status.success(), "a duplicate user was added");
    assert!(String::from_utf8_lossy(&out.stderr).contains("user `alice` already exists"));
    let out = files.ctl(
        &ns,
        &[
            "users",
            "add",
            "carol",
            "--password-file",
            pw,
            "--ip",
            "10.99.0.7",
        ],
    );
    assert!(!out.status.success(), "static addresses are unique");

    let list = ok(&["users", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"name": "alice", "ip": null}, {"name": "bob", "ip": "10.99.0.7"}])
    );
    assert!(!list.contains("s3cret") && !ok(&["users", "list"]).contains("s3cret"));

    let db = files.dir.join("state/users.toml");
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(files.dir.join("state"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    ok(&["users", "del", "alice"]);
    assert!(!ok(&["users", "list"]).contains("alice"));
    let out = files.ctl(&ns, &["users", "del", "alice"]);
    assert!(!out.status.success(), "deleting a missing user succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user `alice`"));
}

#[test]
fn first_start_generates_root_only_secrets_and_a_running_daemon_reloads_users() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    let log = gw.log();
    assert!(
        log.contains("first start: generated the pre-shared key"),
        "{log}"
    );
    let state = gw.files.dir.join("state");
    for f in ["secrets.toml", "users.toml"] {
        let mode = std::fs::metadata(state.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // The secrets themselves never reach the log or the control socket.
    let secrets = std::fs::read_to_string(state.join("secrets.toml")).unwrap();
    let psk = secrets
        .lines()
        .find_map(|l| l.strip_prefix("psk = "))
        .unwrap()
        .trim_matches('"');
    let users = std::fs::read_to_string(state.join("users.toml")).unwrap();
    let pass = users
        .lines()
        .find_map(|l| l.strip_prefix("password = "))
        .unwrap()
        .trim_matches('"');
    let gateway_key = secrets
        .lines()
        .find_map(|l| l.strip_prefix("gateway_key = "))
        .unwrap()
        .trim_matches('"');
    let status = String::from_utf8_lossy(&gw.ctl(&["status", "--json"]).stdout).into_owned();
    // What an operator hands out: the public key only.
    let handout = String::from_utf8_lossy(&gw.ctl(&["gateway-key"]).stdout).into_owned();
    assert!(handout.contains("fingerprint:"), "{handout}");
    for secret in [psk, pass, gateway_key] {
        assert!(!log.contains(secret) && !status.contains(secret) && !handout.contains(secret));
    }
    let sock = gw.files.dir.join("run/control.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let pw = gw.files.dir.join("pw");
    std::fs::write(&pw, "another-password\n").unwrap();
    let out = gw.ctl(&[
        "users",
        "add",
        "dave",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    wait::until(
        "the daemon to reload users",
        Duration::from_secs(10),
        || {
            gw.log()
                .contains("user database reloaded: 2 users")
                .then_some(())
        },
    );
}

/// With a host firewall that rejects forwarding, `open_ports` lets clients'
/// traffic out and its answers back, but nothing new toward the clients.
#[test]
fn open_ports_lets_answers_back_to_the_pool_but_nothing_new() {
    use vpn_tests::{
        native_client::{add_user, gateway_creds, Client},
        topology::LAN_HOST,
    };
    let t = Topology::build();
    t.gw.must("iptables -A FORWARD -j REJECT --reject-with icmp-host-prohibited");
    let gw = Gateway::start(&t.gw, "[firewall]\nopen_ports = true");
    let rules = t.gw.must("iptables -S FORWARD");
    assert!(rules.contains("--ctstate RELATED,ESTABLISHED"), "{rules}");
    add_user(&gw, "alice", "alice-password-1", None);
    let mut a = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    let a_ip = a.wait_connected();
    wait::until(
        "the client reaches the LAN",
        Duration::from_secs(20),
        || {
            t.c1.sh(&format!("ping -c 1 -W 2 {LAN_HOST}"))
                .status
                .success()
                .then_some(())
        },
    );
    assert!(
        !t.lan.sh(&format!("ping -c 1 -W 2 {a_ip}")).status.success(),
        "the LAN cannot open anything toward the client"
    );
}
