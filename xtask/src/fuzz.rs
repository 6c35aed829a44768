//! `cargo xtask fuzz [TARGET] [--time S]`: builds the fuzz targets (stable
//! Rust with libFuzzer's coverage instrumentation, fuzz/), writes the seed
//! corpus from vpn-proto's and vpn-ctl's tests, and runs each target for S seconds over
//! its seeds, its saved corpus and its regressions (inputs that once
//! crashed). Prints the executions each target reached; fails on a crash.
use std::{path::Path, process::Command};

use anyhow::{bail, Context as _};

use crate::cmd;

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// libFuzzer's instrumentation, as cargo-fuzz sets it (without a sanitizer:
/// the code under test is safe Rust).
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing";

/// Every target (fuzz/Cargo.toml's binaries).
pub const TARGETS: [&str; 16] = [
    "native_messages",
    "native_handshake",
    "native_datagram",
    "pptp_control",
    "gre",
    "ppp_link",
    "mppe",
    "l2tp",
    "ike",
    "esp",
    "dhcp",
    "offload",
    "radius",
    "config_file",
    "users_file",
    "secrets_file",
];

pub fn run(target: Option<&str>, secs: u64) -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    let fuzz = root.join("fuzz");
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target `{t}` (one of {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    // --target: the instrumentation must not reach build scripts.
    cmd::run(
        cmd::cargo()
            .current_dir(&fuzz)
            .env("RUSTFLAGS", RUSTFLAGS)
            .args([
                "build",
                "--locked",
                "--release",
                "--target",
                TRIPLE,
                "--bins",
            ]),
    )?;
    let work = root.join("target/fuzz");
    let seeds = work.join("seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    cmd::run(
        cmd::cargo()
            .current_dir(&root)
            .env("VPN_FUZZ_SEEDS", &seeds)
            .args([
                "test",
                "--locked",
                "-p",
                "vpn-proto",
                "-p",
                "vpn-ctl",
                "--lib",
                "-q",
            ]),
    )?;
    let mut failed = Vec::new();
    println!("fuzz: {secs} s per target");
    for t in targets {
        let bin = fuzz.join(format!("target/{TRIPLE}/release/{t}"));
        let dirs = [
            work.join("corpus").join(t),
            seeds.join(t),
            fuzz.join("regressions").join(t),
        ];
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        let artifacts = work.join("artifacts").join(t);
        std::fs::create_dir_all(&artifacts)?;
        let out = Command::new(&bin)
            .arg(format!("-max_total_time={secs}"))
            .arg("-print_final_stats=1")
            .arg("-max_len=4096")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(&dirs)
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = stat(&log, "stat::number_of_executed_units:");
        let seeds_n = count(&dirs[1]) + count(&dirs[2]);
        if out.status.success() {
            println!("  {t:<17} {execs:>12} executions, {seeds_n} seeds, no crash");
        } else {
            println!("  {t:<17} CRASHED (input in {})", artifacts.display());
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            for l in tail.into_iter().rev() {
                println!("    {l}");
            }
            failed.push(t);
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets crashed: {}", failed.join(", "));
    }
    Ok(())
}

fn stat(log: &str, key: &str) -> u64 {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
