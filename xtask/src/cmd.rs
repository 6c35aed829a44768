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

/// Runs `cargo test`, echoing its output, and sums its `test result:` lines.
pub fn run_tests(cmd: &mut Command) -> anyhow::Result<(u64, u64)> {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (mut passed, mut failed) = (0, 0);
    for line in std::io::BufReader::new(child.stdout.take().context("stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut w = part.split_whitespace();
                match (w.next().map(str::parse::<u64>), w.next()) {
                    (Some(Ok(n)), Some("passed")) => passed += n,
                    (Some(Ok(n)), Some("failed")) => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success() || failed > 0, "{cmd:?} failed: {status}");
    Ok((passed, failed))
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
