//! Running commands, and the two cargos (rustup's for the host, Debian's for BPF).
use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::Context as _;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Debian's cargo, whose rustc has a prebuilt `core` for bpfel-unknown-none.
pub fn debian_cargo() -> Command {
    let mut c = Command::new("/usr/bin/cargo");
    // aya-ebpf needs asm_experimental_arch, vpn-ebpf one inline
    // atomic; unlock them for those crates only.
    c.env("RUSTC_BOOTSTRAP", "aya_ebpf,vpn_ebpf")
        .env("RUSTC", "/usr/bin/rustc")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "--cfg=bpf_target_arch=\"x86_64\"",
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
            ]
            .join("\x1f"),
        );
    c
}

/// Builds the eBPF object into `target_dir` (Debian's toolchain).
pub fn build_ebpf(target_dir: &std::path::Path) -> Command {
    let mut c = debian_cargo();
    c.current_dir(workspace_root().join("vpn-ebpf"))
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "--bins",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    c
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

/// What a `cargo test` run did, suite by suite.
#[derive(Default)]
pub struct TestRun {
    pub passed: u64,
    pub failed: u64,
    /// Names of the tests that failed.
    pub failures: Vec<String>,
    /// (suite, tests passed, seconds) per test binary.
    pub suites: Vec<(String, u64, f64)>,
    /// Integration suites (tests/tests/*.rs) that ran no test at all.
    pub empty: Vec<String>,
}

/// Runs `cargo test` (give it `--no-fail-fast`), echoing its output, and
/// reads its `Running`, `test ... FAILED` and `test result:` lines. cargo
/// writes `Running` to stderr and the tests write to stdout: both go into
/// one pipe, so each result follows the suite it belongs to.
pub fn run_tests(cmd: &mut Command) -> anyhow::Result<TestRun> {
    use std::io::BufRead as _;
    let (reader, writer) = std::io::pipe()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    // The command keeps its copies of the pipe's write end: close them, or
    // the reader never sees the end.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut run = TestRun::default();
    let mut suite = String::new();
    for line in std::io::BufReader::new(reader).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.trim_start().strip_prefix("Running ") {
            // "tests/doctor.rs (target/...)", "unittests src/lib.rs (target/...)"
            suite = rest.split(" (").next().unwrap_or("").to_string();
        }
        if let Some(rest) = line.trim_start().strip_prefix("Doc-tests ") {
            suite = format!("doc-tests {rest}");
        }
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            run.failures.push(format!("{suite}: {name}"));
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            let (mut p, mut secs) = (0, 0.0);
            for part in rest.split(['.', ';']) {
                let mut w = part.split_whitespace();
                match (w.next().map(str::parse::<u64>), w.next()) {
                    (Some(Ok(n)), Some("passed")) => p = n,
                    (Some(Ok(n)), Some("failed")) => run.failed += n,
                    _ => {}
                }
            }
            if let Some(t) = rest.split("finished in ").nth(1) {
                secs = t.trim_end_matches('s').parse().unwrap_or(0.0);
            }
            run.passed += p;
            if suite.starts_with("tests/") && p == 0 {
                run.empty.push(suite.clone());
            }
            if !suite.is_empty() {
                run.suites.push((std::mem::take(&mut suite), p, secs));
            }
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(
        status.success() || run.failed > 0,
        "{cmd:?} failed: {status}"
    );
    Ok(run)
}

pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
