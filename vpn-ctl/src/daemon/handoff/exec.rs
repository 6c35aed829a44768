//! Replacing the running image: the successor binary (checked first), the
//! descriptors it inherits, the file with the handoff, execve.
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
/// reads this handoff format and the configuration as it is now (so a
/// restart never ends in a successor that cannot start).
pub fn successor() -> anyhow::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let text = exe.to_string_lossy();
    let path = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
    // Our global options (`-c FILE`), without the `up` command.
    let globals: Vec<_> = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "up")
        .collect();
    let out = std::process::Command::new(&path)
        .args(&globals)
        .arg("handoff-format")
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() && theirs.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "the gateway keeps running unchanged: {}",
            err.trim().trim_start_matches("vpn-ctl: error: ")
        );
    }
    if theirs != FORMAT.to_string() {
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

/// Execs `path` with our arguments and `handoff` (written to an unnamed
/// file in `run_dir`: O_TMPFILE works under systemd's sandbox, where
/// memfd_create may be filtered); returns only on failure (the descriptors
/// are then closed again when `keep` is dropped).
pub fn exec(
    path: &std::path::Path,
    run_dir: &std::path::Path,
    handoff: &Handoff,
    keep: &Keep,
) -> anyhow::Error {
    match try_exec(path, run_dir, handoff, keep) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(
    path: &std::path::Path,
    run_dir: &std::path::Path,
    handoff: &Handoff,
    keep: &Keep,
) -> anyhow::Result<std::convert::Infallible> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(run_dir)
        .with_context(|| format!("an unnamed file in {}", run_dir.display()))?;
    let state = OwnedFd::from(file);
    let text = zeroize::Zeroizing::new(serde_json::to_vec(handoff)?);
    let mut file = std::fs::File::from(state.try_clone()?);
    file.write_all(&text).context("writing the handoff")?;
    // SAFETY: lseek on our own file.
    unsafe { libc::lseek(state.as_raw_fd(), 0, libc::SEEK_SET) };
    let inherited = keep.0.iter().map(|f| f.as_raw_fd());
    for fd in inherited.chain([handoff.lock_fd, state.as_raw_fd()]) {
        inherit(fd)?;
    }
    let err = std::process::Command::new(path)
        .args(std::env::args_os().skip(1))
        .env(ENV, state.as_raw_fd().to_string())
        .exec();
    Err(err).with_context(|| format!("exec {}", path.display()))
}
