//! `vpn-ctl up` refuses bad configurations with one line and leaves nothing
//! behind, including failures late in start-up (undo journal). Needs root.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use vpn_tests::{gateway::GatewayFiles, snapshot::Snapshot, topology::Topology};

/// Runs `up` with `extra` config in the gateway namespace; asserts failure
/// with one stderr line containing `want` and an unchanged namespace.
fn fails(t: &Topology, extra: &str, want: &str) {
    fails_with(t, extra, |_| {}, want);
}

/// `fails`, with files written into the gateway's directories first.
fn fails_with(t: &Topology, extra: &str, prepare: impl FnOnce(&GatewayFiles), want: &str) {
    let files = GatewayFiles::new(&t.gw, extra);
    prepare(&files);
    let before = Snapshot::take(&t.gw, &files.pin_dir);
    let out = files.ctl(&t.gw, &["up"]);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "{extra}: up succeeded");
    assert_eq!(err.lines().count(), 1, "{extra}: one line expected:\n{err}");
    assert!(err.contains(want), "{extra}: `{err}` lacks `{want}`");
    let after = Snapshot::take(&t.gw, &files.pin_dir);
    assert!(
        before == after,
        "{extra}: residue:\n{}",
        before.diff(&after)
    );
}

#[test]
fn unknown_key() {
    let t = Topology::build();
    fails(&t, "[gateway]\nbogus = 1", "line 2: unknown field `bogus`");
}

#[test]
fn pool_overlapping_the_lan() {
    let t = Topology::build();
    fails(
        &t,
        "[gateway]\npool = \"172.16.0.0/16\"",
        "pool 172.16.0.0/16 overlaps the host's address 172.16.10.1/24 on lan0",
    );
}

#[test]
fn missing_wan_interface() {
    let t = Topology::build();
    fails(
        &t,
        "[gateway]\nwan = \"nope0\"",
        "WAN interface nope0 does not exist",
    );
}

#[test]
fn vpn_interface_name_taken() {
    let t = Topology::build();
    fails(
        &t,
        "[gateway]\nvpn_interface = \"lan0\"",
        "interface lan0 already exists",
    );
}

#[test]
fn port_in_use_names_the_owner() {
    let t = Topology::build();
    let mut holder = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", t.gw.name))
        .args([
            "python3",
            "-c",
            "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',1701))\nprint('ready',flush=True)\nsys.stdin.read()",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    fails(
        &t,
        "",
        &format!("UDP port 1701 is in use by pid {} (python3)", holder.id()),
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

/// A failure after the TUN device, forwarding sysctl and BPF are set up: the
/// NAT table name is taken. Everything done before must be undone.
#[test]
fn late_failure_is_unwound() {
    let t = Topology::build();
    t.gw.must("nft add table ip vpn_ctl");
    fails(&t, "", "nftables table ip vpn_ctl already exists");
}

/// A private file in the gateway's state or run directory.
fn write(files: &GatewayFiles, rel: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = files.dir.join(rel);
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn out_of_range_values_name_their_key() {
    let t = Topology::build();
    fails(&t, "[gateway]\npool = \"10.99.0.0/31\"", "gateway.pool");
    fails(&t, "[native]\nport = \"many\"", "invalid type");
}

#[test]
fn corrupt_state_files_name_the_file_and_change_nothing() {
    let t = Topology::build();
    fails_with(
        &t,
        "",
        |f| write(f, "state/users.toml", "[[user]]\nname = 3\n"),
        "users.toml",
    );
    fails_with(
        &t,
        "",
        |f| write(f, "state/secrets.toml", "psk = [\n"),
        "secrets.toml",
    );
    fails_with(
        &t,
        "",
        |f| write(f, "state/secrets.toml", "psk = \"short\"\n"),
        "the pre-shared key must have at least 16 characters",
    );
    fails_with(
        &t,
        "",
        |f| write(f, "run/undo.json", "{ not json"),
        "corrupt undo journal",
    );
}
