//! `cargo xtask build-ebpf | guest-image | test | bench | fuzz`.
mod bench;
mod cmd;
mod container;
mod fuzz;
mod guest;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object alone (bpfel-unknown-none, Debian's rustc + bpf-linker).
    BuildEbpf,
    /// Build (or find cached) the QEMU guest image for interop tests. Needs root.
    GuestImage,
    /// Lint and run every test (unit, BPF fixtures, network namespaces). Needs root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        args: Vec<String>,
    },
    /// Benchmarks that print ratios measured in one run. Needs root.
    /// `bench`: the XDP data plane; `bench native`: the native protocol
    /// against boringtun, and handshakes per second; `bench pptp` and
    /// `bench l2tp`: their in-kernel and userspace paths with the real client.
    Bench {
        /// What to measure: omitted (data plane), `native`, `pptp` or `l2tp`.
        what: Option<String>,
    },
    /// Build the container image (localhost/vpn-ctl:latest) from Debian
    /// packages: docs/container.md. Needs root and podman.
    Container {
        /// Put the debug build in (what the tests run) instead of a release build.
        #[arg(long)]
        debug: bool,
    },
    /// Fuzz every parser that reads network input (or one target) with
    /// libFuzzer, seeded from the tests; fails on a crash.
    Fuzz {
        /// One target (default: all).
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::BuildEbpf => build_ebpf(),
        Task::GuestImage => guest::ensure().map(drop),
        Task::Test { args } => test(&args),
        Task::Bench { what } => bench::run(what.as_deref()),
        Task::Fuzz { target, time } => fuzz::run(target.as_deref(), time),
        Task::Container { debug } => container::build(debug).map(drop),
    }
}

fn build_ebpf() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    cmd::run(&mut cmd::build_ebpf(&root.join("target/ebpf")))?;
    println!(
        "eBPF object: {}",
        root.join("target/ebpf/bpfel-unknown-none/release/vpn-ebpf")
            .display()
    );
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    cmd::run(
        cmd::cargo()
            .current_dir(&root)
            .args(["fmt", "--all", "--check"]),
    )?;
    cmd::run(cmd::cargo().current_dir(&root).args([
        "clippy",
        "--locked",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate, checked for the host (no clippy for bpfel here): it is
    // no_std without unwinding, so abort on panic, in a target dir of its own.
    cmd::run(
        cmd::cargo()
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", root.join("target/clippy-ebpf"))
            .env("RUSTFLAGS", "-Cpanic=abort")
            .args([
                "clippy", "--locked", "-p", "vpn-ebpf", "--", "-D", "warnings",
            ]),
    )?;
    build_ebpf()?;
    guest::ensure()?;
    // The integration tests run the vpn-ctl binary; `cargo test` alone does
    // not build a dependency's binary.
    cmd::run(
        cmd::cargo()
            .current_dir(&root)
            .args(["build", "--locked", "-p", "vpn-ctl", "--bins"]),
    )?;
    // The container test runs this image (with the debug build just made).
    container::build(true)?;
    // Every suite runs even when one fails, so one run reports them all.
    let run = cmd::run_tests(
        cmd::cargo()
            .current_dir(&root)
            .args(["test", "--locked", "--no-fail-fast"])
            .args(extra),
    )?;
    println!("suite times:");
    let mut suites = run.suites.clone();
    suites.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (s, n, secs) in suites.iter().filter(|s| s.2 >= 1.0) {
        println!("  {secs:>7.1} s  {n:>4} tests  {s}");
    }
    for f in &run.failures {
        println!("FAILED: {f}");
    }
    // (With a filter, suites without a matching test are expected.)
    for e in run.empty.iter().filter(|_| extra.is_empty()) {
        println!("EMPTY: {e} ran no test");
    }
    // One closing line for the whole run (cargo ends on the last doc-test binary).
    println!("tests: {} passed, {} failed", run.passed, run.failed);
    anyhow::ensure!(
        run.failed == 0 && run.passed > 0 && (run.empty.is_empty() || !extra.is_empty()),
        "tests failed, or a suite ran none"
    );
    // Every fuzz target, briefly: the seeds and regressions replayed, and
    // a few seconds of search (long runs: `cargo xtask fuzz --time 600`).
    if extra.is_empty() {
        fuzz::run(None, 3)?;
    }
    Ok(())
}
