//! The container image (`cargo xtask container --debug`, built by `cargo
//! xtask test` before the tests): run with podman on the gateway
//! namespace's network, configured by VPN_PSK, VPN_USER, VPN_PASSWORD and a
//! mounted config; a native client connects through it; `podman stop`
//! leaves the namespace as it was. Needs root and podman.
use std::{process::Stdio, time::Duration};

use vpn_tests::{
    native_client::{Client, Creds},
    netns::Netns,
    snapshot::Snapshot,
    topology::{Topology, LAN_HOST},
    wait,
};

const IMAGE: &str = "localhost/vpn-ctl:latest";
const PSK: &str = "container-psk-0123456789abcdef";

/// podman as these machines run it (see xtask/src/container.rs).
fn podman(ns: &Netns) -> std::process::Command {
    let mut c = ns.cmd("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

fn exec(ns: &Netns, name: &str, args: &[&str]) -> std::process::Output {
    podman(ns)
        .args(["exec", name, "vpn-ctl", "-c", "/etc/vpn-ctl/vpn-ctl.toml"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_client_connects_through_the_container_and_stop_leaves_the_host_clean() {
    let t = Topology::build();
    let name = format!("vpn-ctl-{}", t.gw.name);
    let dir = std::env::temp_dir().join("vpn-ctl-tests").join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The mounted configuration: this test's own pin directory.
    let pin_dir = std::path::PathBuf::from("/sys/fs/bpf").join(&t.gw.name);
    let config = dir.join("vpn-ctl.toml");
    std::fs::write(
        &config,
        format!("[paths]\nbpf_pin_dir = \"{}\"\n", pin_dir.display()),
    )
    .unwrap();
    let before = Snapshot::take(&t.gw, &pin_dir);

    let log = std::fs::File::create(dir.join("container.log")).unwrap();
    let mut child = podman(&t.gw)
        .args([
            "run",
            "--rm",
            "--name",
            &name,
            "--privileged",
            "--network",
            "host",
        ])
        .args([
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args(["-e", &format!("VPN_PSK={PSK}")])
        .args([
            "-e",
            "VPN_USER=alice",
            "-e",
            "VPN_PASSWORD=alice-password-1",
        ])
        .arg("-v")
        .arg(format!("{}:/etc/vpn-ctl/vpn-ctl.toml:ro", config.display()))
        .arg(IMAGE)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(dir.join("container.log")).unwrap_or_default();
    wait::until(
        "the gateway in the container",
        Duration::from_secs(60),
        || {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("the container exited ({s}):\n{}", read_log());
            }
            exec(&t.gw, &name, &["status", "--json"])
                .status
                .success()
                .then_some(())
        },
    );
    let out = exec(&t.gw, &name, &["gateway-key", "--json"]);
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let creds = Creds {
        psk: PSK.into(),
        key: key["gateway_key"].as_str().unwrap().into(),
    };
    let mut c = Client::start(&t.c1, "alice", "alice-password-1", &creds, &[]);
    c.wait_connected();
    t.c1.must(&format!("ping -c 2 -W 2 {LAN_HOST}"));
    c.stop();

    let out = podman(&t.gw)
        .args(["stop", "-t", "20", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = child.wait().unwrap();
    let log = read_log();
    assert!(
        log.contains("gateway stopped, host restored"),
        "{status}:\n{log}"
    );
    let after = Snapshot::take(&t.gw, &pin_dir);
    assert!(before == after, "residue:\n{}", before.diff(&after));
}
