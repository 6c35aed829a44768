//! `cargo xtask guest-image`: the QEMU guest that runs real VPN clients
//! (docs/interop.md). A Debian kernel, a stage-1 busybox initramfs and an ext4
//! root filesystem from mmdebstrap, cached under a hash of their inputs.
use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

use crate::cmd::{output, run, workspace_root};

/// Where built images live, one directory per input hash; shared by every
/// checkout on the machine so a fresh clone does not rebuild.
const CACHE: &str = "/var/cache/vpn-ctl/guest";
const SUITE: &str = "bookworm";
const SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
/// Extra room in the root filesystem over what the files use.
const ROOTFS_SLACK_MB: u64 = 256;
/// The modules stage 1 loads to reach the root filesystem (with their dependencies).
const STAGE1_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];

/// Builds the image unless an identical one is cached, then points
/// `target/guest` at it. Returns that directory.
pub fn ensure() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let kernel_pkg = kernel_package()?;
    let hash = input_hash(&root.join("guest"), &kernel_pkg)?;
    let dir = Path::new(CACHE).join(&hash);
    if dir.join("rootfs.ext4").exists() {
        println!("guest image: cached at {}", dir.display());
    } else {
        let started = std::time::Instant::now();
        build(&root.join("guest"), &kernel_pkg, &dir)?;
        println!(
            "guest image: built in {:.0} s at {}",
            started.elapsed().as_secs_f64(),
            dir.display()
        );
        remove_stale(&hash)?;
    }
    let link = root.join("target/guest");
    fs::create_dir_all(root.join("target"))?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&dir, &link)
        .with_context(|| format!("cannot link {}", link.display()))?;
    Ok(dir)
}

/// The versioned kernel package that `linux-image-amd64` depends on.
fn kernel_package() -> anyhow::Result<String> {
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    deps.lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|v| format!("linux-image-{v}"))
        .context("apt-cache names no kernel for linux-image-amd64 (run apt-get update)")
}

/// A hash of everything the image is built from: the files in guest/, this
/// recipe, the kernel package and the suite.
fn input_hash(guest_dir: &Path, kernel_pkg: &str) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    let mut names: Vec<_> = fs::read_dir(guest_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for p in names {
        h.update(p.file_name().unwrap_or_default().as_encoded_bytes());
        h.update(fs::read(&p)?);
    }
    h.update(include_bytes!("guest.rs"));
    h.update(kernel_pkg);
    h.update(SUITE);
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn remove_stale(keep: &str) -> anyhow::Result<()> {
    for e in fs::read_dir(CACHE)? {
        let e = e?;
        if e.file_name() != keep {
            fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
}

/// Lines of a list file in guest/, without comments and blanks.
fn list(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn build(guest_dir: &Path, kernel_pkg: &str, dir: &Path) -> anyhow::Result<()> {
    let work = dir.with_extension("tmp");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;

    println!("guest image: kernel {kernel_pkg}");
    let kernel = work.join("kernel");
    fs::create_dir_all(&kernel)?;
    run(Command::new("apt-get").current_dir(&work).args([
        "download",
        "-q",
        "-o",
        "APT::Sandbox::User=root",
        kernel_pkg,
    ]))?;
    let deb = fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&kernel))?;
    let version = kernel_pkg
        .strip_prefix("linux-image-")
        .context("kernel package name")?;
    let vmlinuz = kernel.join(format!("boot/vmlinuz-{version}"));
    fs::write(work.join("vmlinux"), extract_vmlinux(&fs::read(&vmlinuz)?)?)?;
    let modules = kernel.join("lib/modules").join(version);
    run(Command::new("depmod").arg("-b").arg(&kernel).arg(version))?;

    println!("guest image: root filesystem (mmdebstrap {SUITE})");
    let rootfs = work.join("rootfs");
    let include = list(&guest_dir.join("packages"))?.join(",");
    run(Command::new("mmdebstrap")
        .args(["--variant=essential", "--mode=root", "--quiet"])
        .arg(format!("--include={include}"))
        .args([
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
        ])
        .arg(SUITE)
        .arg(&rootfs)
        .arg(SOURCES))?;
    stage_packages(guest_dir, &rootfs)?;
    install_modules(
        guest_dir,
        &modules,
        &rootfs.join("usr/lib/modules").join(version),
    )?;
    run(Command::new("chroot")
        .arg(&rootfs)
        .args(["depmod", version]))?;
    install_file(&guest_dir.join("init"), &rootfs.join("sbin/vpn-guest-init"))?;
    install_file(
        &guest_dir.join("agent"),
        &rootfs.join("usr/local/sbin/vpn-guest-agent"),
    )?;
    let size_mb = du_mb(&rootfs)? + ROOTFS_SLACK_MB;
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "vpnguest", "-d"])
        .arg(&rootfs)
        .arg(work.join("rootfs.ext4"))
        .arg(format!("{size_mb}M")))?;

    println!("guest image: stage-1 initramfs");
    build_initramfs(guest_dir, &kernel, version, &work.join("initrd.cpio"))?;

    for scratch in ["kernel", "rootfs"] {
        fs::remove_dir_all(work.join(scratch))?;
    }
    fs::remove_file(deb)?;
    fs::rename(&work, dir)?;
    Ok(())
}

/// Where the guest keeps the packages of `guest/packages-staged`.
const STAGED: &str = "var/cache/vpn-guest";

/// Downloads the packages of `guest/packages-staged` into the root
/// filesystem without installing them: clients that conflict with the
/// default ones (libreswan with strongSwan), which a test installs in its
/// own guest (the root filesystem is a snapshot per boot). Their
/// dependencies are in `guest/packages`, so `dpkg -i` needs no network.
fn stage_packages(guest_dir: &Path, rootfs: &Path) -> anyhow::Result<()> {
    let to = rootfs.join(STAGED);
    fs::create_dir_all(&to)?;
    for pkg in list(&guest_dir.join("packages-staged"))? {
        run(Command::new("apt-get").current_dir(&to).args([
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            &pkg,
        ]))?;
    }
    // A stable name for each: `<package>.deb`.
    for e in fs::read_dir(&to)? {
        let path = e?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some((pkg, _)) = name.split_once('_') {
            fs::rename(&path, to.join(format!("{pkg}.deb")))?;
        }
    }
    Ok(())
}

/// The uncompressed kernel inside a bzImage: booting it directly saves
/// seconds under TCG. Tries each xz/gzip/zstd stream until one is an ELF.
fn extract_vmlinux(bz: &[u8]) -> anyhow::Result<Vec<u8>> {
    const FORMATS: &[(&[u8], &str)] = &[
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x1f\x8b\x08", "gzip"),
    ];
    for (magic, tool) in FORMATS {
        let mut from = 0;
        while let Some(at) = find(&bz[from..], magic).map(|i| i + from) {
            let mut child = Command::new(tool)
                .args(["-dc"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot run {tool}"))?;
            let mut stdin = child.stdin.take().context("stdin")?;
            let data = bz[at..].to_vec();
            // Trailing bytes after the stream make the tool complain; the output is what counts.
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
            let out = child.wait_with_output()?;
            let _ = writer.join();
            if out.stdout.starts_with(b"\x7fELF") {
                return Ok(out.stdout);
            }
            from = at + 1;
        }
    }
    bail!("no compressed ELF kernel found in vmlinuz")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Copies the module directories listed in guest/modules, plus depmod's inputs.
fn install_modules(guest_dir: &Path, from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to.join("kernel"))?;
    for rel in list(&guest_dir.join("modules"))? {
        let src = from.join("kernel").join(&rel);
        let dst = to.join("kernel").join(&rel);
        fs::create_dir_all(dst.parent().context("module path")?)?;
        run(Command::new("cp").arg("-a").arg(&src).arg(&dst))?;
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(from.join(f), to.join(f))?;
    }
    Ok(())
}

fn install_file(src: &Path, dst: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dst.parent().context("install path")?)?;
    fs::copy(src, dst).with_context(|| format!("cannot install {}", dst.display()))?;
    Ok(())
}

fn du_mb(dir: &Path) -> anyhow::Result<u64> {
    let out = output(Command::new("du").args(["-sm"]).arg(dir))?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du output")
}

/// A tiny initramfs: static busybox, the disk and ext4 modules in dependency
/// order, and guest/stage1-init as /init. Uncompressed (it is ~2 MB).
fn build_initramfs(
    guest_dir: &Path,
    kernel: &Path,
    version: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let dir = out.with_extension("d");
    for d in ["bin", "dev", "proc", "newroot", "modules"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).context("busybox-static is missing")?;
    install_file(&guest_dir.join("stage1-init"), &dir.join("init"))?;
    // The kernel opens /dev/console before /init runs.
    run(Command::new("mknod")
        .arg(dir.join("dev/console"))
        .args(["c", "5", "1"]))?;
    let deps = output(
        Command::new("modprobe")
            .arg("-d")
            .arg(kernel)
            .args(["-S", version, "--show-depends", "-a"])
            .args(STAGE1_MODULES),
    )?;
    let mut load = Vec::new();
    for line in deps.lines() {
        let Some(path) = line.strip_prefix("insmod ") else {
            continue; // builtin
        };
        let path = Path::new(path.trim());
        let name = path
            .file_name()
            .context("module name")?
            .to_string_lossy()
            .into_owned();
        // ext4 pulls in the SSE4.2 crc32c, which -cpu qemu64 lacks.
        if name == "crc32c-intel.ko" {
            continue;
        }
        if !load.contains(&name) {
            fs::copy(path, dir.join("modules").join(&name))?;
            load.push(name);
        }
    }
    fs::write(dir.join("modules.load"), load.join("\n") + "\n")?;
    let cpio = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > '{}'",
            dir.display(),
            out.display()
        ))
        .status()?;
    anyhow::ensure!(cpio.success(), "cpio failed");
    fs::remove_dir_all(&dir)?;
    Ok(())
}
