//! `cargo xtask container [--debug]`: the container image from Debian
//! packages only. A Debian root file system from mmdebstrap (cached by its
//! package list) is imported into podman as the base; the Containerfile
//! adds vpn-ctl (release build, or the debug build the tests use) and the
//! entrypoint.
use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::cmd;

/// What the daemon runs besides itself: netlink tools, nftables, iptables.
const PACKAGES: [&str; 4] = ["iproute2", "nftables", "iptables", "ca-certificates"];
const SUITE: &str = "bookworm";
/// The same apt sources as the guest image (the machine's Debian mirror).
const SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
pub const IMAGE: &str = "localhost/vpn-ctl:latest";

/// podman as it runs on these machines: runc (crun refuses hybrid cgroup
/// v1), cgroupfs (no systemd), and limits within the hard ones we have
/// (no CAP_SYS_RESOURCE to raise them).
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

/// Builds the image; returns its name.
pub fn build(debug: bool) -> anyhow::Result<&'static str> {
    let root = cmd::workspace_root();
    let work = root.join("target/container");
    std::fs::create_dir_all(&work)?;
    // The base is rebuilt when its package list changes.
    let hash = PACKAGES
        .join(",")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let tag = format!("{SUITE}-{:08x}", hash as u32);
    let base = format!("localhost/vpn-ctl-base:{tag}");
    let have_base = podman()
        .args(["image", "exists", &base])
        .status()
        .is_ok_and(|s| s.success());
    if !have_base {
        let tar = work.join(format!("base-{tag}.tar"));
        if !tar.exists() {
            println!("container: base root file system (mmdebstrap {SUITE})");
            cmd::run(
                Command::new("mmdebstrap")
                    .args(["--variant=minbase", "--mode=root", "--quiet"])
                    .arg(format!("--include={}", PACKAGES.join(",")))
                    .args([
                        "--dpkgopt=path-exclude=/usr/share/man/*",
                        "--dpkgopt=path-exclude=/usr/share/doc/*",
                        "--dpkgopt=path-exclude=/usr/share/locale/*",
                    ])
                    .arg(SUITE)
                    .arg(&tar)
                    .arg(SOURCES),
            )?;
        }
        cmd::run(podman().args(["import", "--quiet"]).arg(&tar).arg(&base))?;
    }
    let binary: PathBuf = if debug {
        root.join("target/debug/vpn-ctl")
    } else {
        cmd::run(cmd::cargo().current_dir(&root).args([
            "build",
            "--locked",
            "--release",
            "-p",
            "vpn-ctl",
            "--bin",
            "vpn-ctl",
        ]))?;
        root.join("target/release/vpn-ctl")
    };
    let context = work.join("context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context)?;
    let dist = root.join("dist/container");
    for (from, to) in [
        (binary, "vpn-ctl"),
        (dist.join("entrypoint.sh"), "entrypoint.sh"),
        (dist.join("Containerfile"), "Containerfile"),
    ] {
        std::fs::copy(&from, context.join(to))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    cmd::run(
        podman()
            .args(["build", "--quiet", "--build-arg"])
            .arg(format!("BASE={base}"))
            .args(["-t", IMAGE, "-f"])
            .arg(context.join("Containerfile"))
            .arg(&context),
    )?;
    println!("container: {IMAGE}");
    Ok(IMAGE)
}
