//! After setup the daemon keeps only the capabilities it still needs
//! (docs/decisions.md #43): NET_ADMIN (netlink, nftables/iptables at
//! teardown), NET_RAW (iptables-legacy), BPF (map work), and SYS_ADMIN only
//! when teardown must unmount a bpffs it mounted. Everything else leaves the
//! effective, permitted, inheritable, ambient and bounding sets, so the
//! `nft`/`iptables` it runs at teardown get no more either.
//!
//! Capabilities belong to threads, and the tokio workers and the data-path
//! threads exist before setup ends. So the change is made in every thread:
//! a real-time signal makes each one run the same two system calls (what
//! glibc's setxid and Go's `AllThreadsSyscall` do), and /proc is read back
//! until every thread reports the kept set. Threads started later inherit it.
use std::{
    io,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// The names `status` shows, by capability number.
pub fn name(cap: u32) -> &'static str {
    match cap {
        CAP_NET_ADMIN => "net_admin",
        CAP_NET_RAW => "net_raw",
        CAP_SYS_ADMIN => "sys_admin",
        CAP_BPF => "bpf",
        _ => "other",
    }
}

/// What the daemon keeps; `sys_admin`: teardown unmounts a bpffs.
pub fn kept(sys_admin: bool) -> Vec<u32> {
    let mut caps = vec![CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF];
    if sys_admin {
        caps.insert(2, CAP_SYS_ADMIN);
    }
    caps
}

pub fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << c)
}

static KEEP: AtomicU64 = AtomicU64::new(0);
static LAST_CAP: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops the calling thread's capabilities to `KEEP`. Only system calls:
/// it runs inside a signal handler.
fn drop_this_thread() {
    let keep = KEEP.load(Ordering::SeqCst);
    let last = LAST_CAP.load(Ordering::SeqCst);
    // The bounding set first: dropping from it needs CAP_SETPCAP, which
    // the capset below removes.
    for cap in 0..=last {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // Keep what we have of `keep` (a service manager may have withheld some).
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version-3 header and room for two data words.
    unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    for (i, d) in data.iter_mut().enumerate() {
        let bits = (keep >> (32 * i)) as u32 & d.permitted;
        d.effective = bits;
        d.permitted = bits;
        d.inheritable = 0;
    }
    // SAFETY: capset(2) with a version-3 header and two data words.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
}

extern "C" fn on_signal(_: libc::c_int) {
    // SAFETY: errno is thread-local; the interrupted code must find it as it left it.
    let errno = unsafe { *libc::__errno_location() };
    drop_this_thread();
    HANDLED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// One thread's capability sets, from /proc (hex masks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCaps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
}

/// Reads `CapEff`, `CapPrm`, `CapInh`, `CapBnd` and `CapAmb` from a
/// /proc status file.
pub fn parse_status(text: &str) -> Option<ThreadCaps> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some(ThreadCaps {
        effective: field("CapEff:")?,
        permitted: field("CapPrm:")?,
        inheritable: field("CapInh:")?,
        bounding: field("CapBnd:")?,
        ambient: field("CapAmb:")?,
    })
}

/// Thread ids of this process holding anything beyond `keep`.
fn threads_over(keep: u64) -> io::Result<Vec<i32>> {
    let mut over = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // A thread that ended meanwhile has no status: nothing to do.
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let c = parse_status(&text).ok_or_else(|| io::Error::other("no Cap lines"))?;
        let ok = c.effective & !keep == 0
            && c.permitted & !keep == 0
            && c.bounding & !keep == 0
            && c.inheritable == 0
            && c.ambient == 0;
        if !ok {
            over.push(tid);
        }
    }
    Ok(over)
}

/// Drops every thread of the process to `caps`. Err: some thread kept more
/// within the deadline (the caller ends the daemon: fail closed).
pub fn drop_all_threads(caps: &[u32]) -> anyhow::Result<()> {
    let keep = mask(caps);
    let last: u64 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .context("reading /proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()
        .context("parsing cap_last_cap")?;
    KEEP.store(keep, Ordering::SeqCst);
    LAST_CAP.store(last, Ordering::SeqCst);
    let signal = libc::SIGRTMIN() + 4;
    // SAFETY: installs a handler that only makes system calls and touches
    // atomics; SA_RESTART so interrupted blocking calls resume.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(signal, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error()).context("sigaction");
        }
    }
    drop_this_thread();
    // SAFETY: getpid/gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let over = threads_over(keep).context("reading /proc/self/task")?;
        if over.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "threads {over:?} still hold capabilities beyond {}",
                describe(caps)
            );
        }
        for tid in over {
            if tid == me {
                drop_this_thread();
                continue;
            }
            // SAFETY: tgkill to a thread of this process; ESRCH (it ended) is fine.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The names, for `status`.
pub fn describe_list(caps: &[u32]) -> Vec<String> {
    caps.iter().map(|&c| name(c).to_string()).collect()
}

/// "net_admin, net_raw, bpf" for logs and errors.
pub fn describe(caps: &[u32]) -> String {
    describe_list(caps).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_proc_status() {
        assert_eq!(mask(&kept(false)), 1 << 12 | 1 << 13 | 1 << 39);
        assert_eq!(mask(&kept(true)), 1 << 12 | 1 << 13 | 1 << 21 | 1 << 39);
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000008000003000\n\
                      CapEff:\t0000008000003000\nCapBnd:\t0000008000003000\nCapAmb:\t0000000000000000\n";
        let c = parse_status(status).unwrap();
        assert_eq!(c.effective, mask(&kept(false)));
        assert_eq!(c.bounding, c.effective);
        assert!(parse_status("Name:\tx\n").is_none());
        assert_eq!(describe(&kept(true)), "net_admin, net_raw, sys_admin, bpf");
    }
}
