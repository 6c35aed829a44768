//! Replacing the running image: the successor binary (checked first), the
//! descriptors it inherits, the memfd with the handoff, execve.
use std::{
    io::Write as _,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    path::PathBuf,
};

use anyhow::Context as _;

use super::{Handoff, ENV, FORMAT};

/// Descriptors the successor inherits (duplicates the predecessor made
/// while the originals were still in use).
#[derive(Default)]
pub struct Keep(pub Vec<OwnedFd>);

impl Keep {
    /// Keeps a duplicate of `fd`; its number for the handoff.
    pub fn dup(&mut self, fd: RawFd) -> anyhow::Result<RawFd> {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller holds open.
        let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("dup for the handoff");
        }
        // SAFETY: a fresh descriptor, ours alone.
        self.0.push(unsafe { OwnedFd::from_raw_fd(n) });
        Ok(n)
    }
}

/// The binary that takes over: the one at our path now (a package upgrade
/// replaced the file; /proc names the old one "(deleted)"), provided it
/// reads this handoff format.
pub fn successor() -> anyhow::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let text = exe.to_string_lossy();
    let path = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
    let out = std::process::Command::new(&path)
        .arg("handoff-format")
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || theirs != FORMAT.to_string() {
        anyhow::bail!(
            "{} cannot take over this daemon's sessions (handoff format {}, ours {FORMAT}); \
             `systemctl restart` (down, then up) restarts it, ending every session",
            path.display(),
            if theirs.is_empty() {
                "unknown"
            } else {
                &theirs
            }
        );
    }
    Ok(path)
}

fn inherit(fd: RawFd) -> anyhow::Result<()> {
    // SAFETY: F_SETFD on a descriptor we hold open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("clearing close-on-exec");
    }
    Ok(())
}

/// Execs `path` with our arguments and `handoff`; returns only on failure
/// (the descriptors are then closed again when `keep` is dropped).
pub fn exec(path: &std::path::Path, handoff: &Handoff, keep: &Keep) -> anyhow::Error {
    match try_exec(path, handoff, keep) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(
    path: &std::path::Path,
    handoff: &Handoff,
    keep: &Keep,
) -> anyhow::Result<std::convert::Infallible> {
    // SAFETY: memfd_create with a NUL-terminated name and no flags (the
    // successor inherits it).
    let raw = unsafe { libc::memfd_create(c"vpn-ctl-handoff".as_ptr(), 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: fresh descriptor, ours alone.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let text = zeroize::Zeroizing::new(serde_json::to_vec(handoff)?);
    let mut file = std::fs::File::from(memfd.try_clone()?);
    file.write_all(&text).context("writing the handoff")?;
    // SAFETY: lseek on our memfd.
    unsafe { libc::lseek(memfd.as_raw_fd(), 0, libc::SEEK_SET) };
    for fd in keep
        .0
        .iter()
        .map(|f| f.as_raw_fd())
        .chain([handoff.lock_fd])
    {
        inherit(fd)?;
    }
    let err = std::process::Command::new(path)
        .args(std::env::args_os().skip(1))
        .env(ENV, memfd.as_raw_fd().to_string())
        .exec();
    Err(err).with_context(|| format!("exec {}", path.display()))
}
