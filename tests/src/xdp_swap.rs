//! A benchmark baseline: the program behind a running daemon's XDP link
//! swapped for one that only returns XDP_PASS, and back, with
//! BPF_LINK_UPDATE. Everything else the gateway set up (addresses, routes,
//! NAT, conntrack, the TC programs) stays as it is, so the difference
//! between the two is the XDP program's own cost.
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::Context as _;

use crate::raw_bpf::{bpf, load_xdp_pass, prog_by_id};

const BPF_LINK_UPDATE: libc::c_long = 29;

/// The XDP link a process holds (found in /proc/PID/fdinfo, duplicated
/// with pidfd_getfd) and the id of the program behind it.
pub fn xdp_link_of(pid: u32) -> anyhow::Result<(OwnedFd, u32)> {
    let dir = format!("/proc/{pid}/fdinfo");
    let (fd, prog) = std::fs::read_dir(&dir)
        .with_context(|| dir.clone())?
        .filter_map(Result::ok)
        .find_map(|e| {
            let info = std::fs::read_to_string(e.path()).ok()?;
            let field = |k: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            (field("link_type:")? == "xdp").then_some(())?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            Some((fd, field("prog_id:")?.parse::<u32>().ok()?))
        })
        .with_context(|| format!("process {pid} holds no XDP link"))?;
    // SAFETY: plain syscalls; each returned descriptor is owned below.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        anyhow::ensure!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
        let link = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        anyhow::ensure!(
            link >= 0,
            "pidfd_getfd: {}",
            std::io::Error::last_os_error()
        );
        Ok((OwnedFd::from_raw_fd(link as RawFd), prog))
    }
}

/// Points `link` at `prog`.
pub fn update(link: &OwnedFd, prog: &OwnedFd) -> anyhow::Result<()> {
    let mut attr: [u32; 4] = [link.as_raw_fd() as u32, prog.as_raw_fd() as u32, 0, 0];
    bpf(BPF_LINK_UPDATE, &mut attr).context("BPF_LINK_UPDATE")?;
    Ok(())
}

/// A daemon's XDP link with both programs at hand; puts the daemon's own
/// program back when dropped, also on an early error.
pub struct Swap {
    link: OwnedFd,
    ours: OwnedFd,
    pass: OwnedFd,
    pub ours_id: u32,
}

impl Swap {
    pub fn of_process(pid: u32) -> anyhow::Result<Swap> {
        let (link, ours_id) = xdp_link_of(pid)?;
        Ok(Swap {
            ours: prog_by_id(ours_id)?,
            pass: load_xdp_pass()?,
            link,
            ours_id,
        })
    }

    pub fn to_pass(&self) -> anyhow::Result<()> {
        update(&self.link, &self.pass)
    }

    pub fn to_ours(&self) -> anyhow::Result<()> {
        update(&self.link, &self.ours)
    }

    /// The XDP_PASS program, for BPF_PROG_TEST_RUN baselines.
    pub fn pass_fd(&self) -> RawFd {
        self.pass.as_raw_fd()
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let _ = self.to_ours();
    }
}
