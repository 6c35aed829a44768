//! A benchmark baseline: the program behind a running daemon's XDP link
//! swapped for one that only returns XDP_PASS, and back, with
//! BPF_LINK_UPDATE. Everything else the gateway set up (addresses, routes,
//! NAT, conntrack, the TC programs) stays as it is, so the difference
//! between the two is the XDP program's own cost.
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::Context as _;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: `attr` is a live, correctly laid out `union bpf_attr` member
    // for `cmd`, of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads `r0 = XDP_PASS; exit`.
pub fn load_xdp_pass() -> anyhow::Result<OwnedFd> {
    // mov64 r0, 2 ; exit
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0x00, 0, 0, 2, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = b"GPL\0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"xdp_pass\0");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..ProgLoad::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD of an XDP_PASS program")?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A descriptor of the loaded program with this id.
pub fn prog_by_id(id: u32) -> anyhow::Result<OwnedFd> {
    let mut attr: [u32; 3] = [id, 0, 0];
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .with_context(|| format!("BPF_PROG_GET_FD_BY_ID {id}"))?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

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
