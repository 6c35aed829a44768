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

    ok(&[
        "users",
        "add",
        "erin",
        "--password-file",
        pw,
        "--native-only",
    ]);
    let list = ok(&["users", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"name": "alice", "ip": null, "ppp": true},
            {"name": "bob", "ip": "10.99.0.7", "ppp": true},
            {"name": "erin", "ip": null, "ppp": false},
        ])
    );
    assert!(!list.contains("s3cret") && !ok(&["users", "list"]).contains("s3cret"));

    // The file holds verifiers, never a password that was added: an
    // argon2id verifier each, an NT hash only for users allowed PPP.
    let db = files.dir.join("state/users.toml");
    let text = std::fs::read_to_string(&db).unwrap();
    assert!(
        !text.contains("s3cret") && !text.contains("password"),
        "{text}"
    );
    assert_eq!(text.matches("verifier = \"$argon2id$").count(), 3, "{text}");
    assert_eq!(text.matches("nt_hash = ").count(), 2, "{text}");
    std::fs::write(files.dir.join("pw2"), "n3w-horse-battery\n").unwrap();
    let pw2 = files.dir.join("pw2");
    ok(&[
        "users",
        "passwd",
        "erin",
        "--password-file",
        pw2.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&db).unwrap();
    assert_eq!(text.matches("nt_hash = ").count(), 3, "{text}");
    assert!(!text.contains("n3w-horse"), "{text}");
    let out = files.ctl(&ns, &["users", "passwd", "nobody", "--password-file", pw]);
    assert!(
        !out.status.success(),
        "changed the password of a missing user"
    );

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
        log.contains("first start: generated the pre-shared key")
            && log.contains("initial-password"),
        "{log}"
    );
    let state = gw.files.dir.join("state");
    for f in ["secrets.toml", "users.toml", "initial-password"] {
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
    // The first user's password is handed over in its own file, never in
    // the user database.
    let initial = std::fs::read_to_string(state.join("initial-password")).unwrap();
    let pass = initial.lines().next().unwrap();
    assert_eq!(
        std::fs::metadata(state.join("initial-password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let users = std::fs::read_to_string(state.join("users.toml")).unwrap();
    assert!(!users.contains(pass), "{users}");
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
    // systemctl reload: SIGHUP re-reads the database too.
    let pid = gw.status()["pid"].as_u64().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait::until("SIGHUP to reload users", Duration::from_secs(10), || {
        (gw.log().matches("user database reloaded: 2 users").count() == 2).then_some(())
    });
}

/// A users.toml from before verifiers (clear passwords) is rewritten on
/// start, and the old password still logs in.
#[test]
fn clear_passwords_are_migrated_on_start_and_still_log_in() {
    use vpn_tests::native_client::{gateway_creds, Client};
    let t = Topology::build();
    let files = GatewayFiles::new(&t.gw, "");
    let state = files.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let db = state.join("users.toml");
    std::fs::write(
        &db,
        "[[user]]\nname = \"frank\"\npassword = \"frank-old-password\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gw = Gateway::start_with(&t.gw, files);
    let text = std::fs::read_to_string(&db).unwrap();
    assert!(
        !text.contains("frank-old-password") && text.contains("$argon2id$"),
        "{text}"
    );
    assert!(gw.log().contains("replaced the clear passwords of 1 users"));
    let mut c = Client::start(
        &t.c1,
        "frank",
        "frank-old-password",
        &gateway_creds(&gw),
        &[],
    );
    c.wait_connected();
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
