//! `cargo xtask bench`: build times, then the data-plane benchmark binary.
use std::time::Instant;

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    // Cold eBPF build: a fresh target directory each time.
    let dir = root.join("target/bench-ebpf");
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    cmd::output(&mut cmd::build_ebpf(&dir))?;
    let ebpf_build = t0.elapsed();
    let t0 = Instant::now();
    cmd::output(cmd::cargo().current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "vpn-ctl",
        "-p",
        "vpn-tests",
        "--bins",
    ]))?;
    let release_build = t0.elapsed();
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
