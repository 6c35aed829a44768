//! `cargo xtask bench`: build times, then the data-plane benchmark binary.
use std::time::Instant;

use crate::cmd;

pub fn run(what: Option<&str>) -> anyhow::Result<()> {
    match what {
        None => data_plane(),
        Some("dataplane") => forwarding(),
        Some("native") => native(),
        Some("pptp") => guest_bench("vpn-bench-pptp"),
        Some("l2tp") => guest_bench("vpn-bench-l2tp"),
        Some("ipsec") => guest_bench("vpn-bench-ipsec"),
        Some(other) => {
            anyhow::bail!(
                "unknown benchmark `{other}` (omit it, `dataplane`, `native`, `pptp`, `l2tp` or `ipsec`)"
            )
        }
    }
}

/// The userspace WireGuard peers (boringtun-cli, wireguard-go) and wg,
/// installed if missing.
fn ensure_wireguard_peers() -> anyhow::Result<()> {
    let have = |c: &str, arg: &str| {
        std::process::Command::new(c)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let wireguard_go = std::process::Command::new("sh")
        .args(["-c", "command -v wireguard-go"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have("wg", "--version") || !wireguard_go {
        cmd::run(std::process::Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "wireguard-tools",
            "wireguard-go",
        ]))?;
    }
    if !have("boringtun-cli", "--version") {
        println!("installing boringtun-cli 0.7.1 (about a minute)");
        cmd::run(cmd::cargo().args([
            "install",
            "--locked",
            "boringtun-cli",
            "--version",
            "0.7.1",
        ]))?;
    }
    Ok(())
}

fn release_bins(root: &std::path::Path) -> anyhow::Result<std::time::Duration> {
    let t0 = Instant::now();
    cmd::output(cmd::cargo().current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "vpn-ctl",
        "-p",
        "vpn-tests",
        "--bins",
    ]))?;
    Ok(t0.elapsed())
}

fn native() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    ensure_wireguard_peers()?;
    release_bins(&root)?;
    cmd::run(&mut std::process::Command::new(
        root.join("target/release/vpn-bench-native"),
    ))
}

/// The forwarding paths of an unencrypted call: plain XDP_REDIRECT, XDP
/// forwarding, TC and userspace.
fn forwarding() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    release_bins(&root)?;
    cmd::run(&mut std::process::Command::new(
        root.join("target/release/vpn-bench-forward"),
    ))
}

/// A benchmark binary that drives the real client in the QEMU guest.
fn guest_bench(bin: &str) -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    crate::guest::ensure()?;
    release_bins(&root)?;
    cmd::run(&mut std::process::Command::new(
        root.join("target/release").join(bin),
    ))
}

fn data_plane() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    // Cold eBPF build: a fresh target directory each time.
    let dir = root.join("target/bench-ebpf");
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    cmd::output(&mut cmd::build_ebpf(&dir))?;
    let ebpf_build = t0.elapsed();
    let release_build = release_bins(&root)?;
    let t0 = Instant::now();
    cmd::output(&mut std::process::Command::new(root.join("scripts/setup")))?;
    let setup = t0.elapsed();
    println!("build and setup");
    println!(
        "  eBPF object, cold build:     {:>12.1} s",
        ebpf_build.as_secs_f64()
    );
    println!(
        "  release binaries:            {:>12.1} s",
        release_build.as_secs_f64()
    );
    println!(
        "  scripts/setup, cached:       {:>12.2} s",
        setup.as_secs_f64()
    );
    cmd::run(&mut std::process::Command::new(
        root.join("target/release/vpn-bench"),
    ))
}
