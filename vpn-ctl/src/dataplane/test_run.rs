//! BPF_PROG_TEST_RUN: runs a loaded program on a packet without attaching it.
//! Used by the fixture tests and by the benchmark (with `repeat`).
use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::Context as _;
use aya::programs::{SchedClassifier, Xdp};

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// `union bpf_attr`'s `test` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// What one test run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (an `xdp_action`, or a `TC_ACT_*`).
    pub action: u32,
    /// The packet as the program left it.
    pub output: Vec<u8>,
    /// Average run time per repetition, in nanoseconds.
    pub duration_ns: u32,
}

/// The BPF_PROG_TEST_RUN system call on `attr`.
fn test_run(attr: &mut TestAttr) -> std::io::Result<()> {
    // SAFETY: `attr` points at live buffers of the stated sizes for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `prog` on `packet` `repeat` times (at least once).
pub fn run_xdp(prog: &Xdp, packet: &[u8], repeat: u32) -> anyhow::Result<TestRun> {
    let fd = prog.fd().context("program not loaded")?;
    run_fd(fd.as_fd().as_raw_fd(), packet, repeat)
}

/// Runs a TC classifier on an Ethernet frame (`action`: a `TC_ACT_*`).
pub fn run_tc(prog: &SchedClassifier, packet: &[u8], repeat: u32) -> anyhow::Result<TestRun> {
    let fd = prog.fd().context("program not loaded")?;
    run_fd(fd.as_fd().as_raw_fd(), packet, repeat)
}

/// Runs the program behind a raw descriptor (a benchmark's baseline program).
pub fn run_fd(fd: std::os::fd::RawFd, packet: &[u8], repeat: u32) -> anyhow::Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 512];
    let mut attr = TestAttr {
        prog_fd: fd as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: repeat.max(1),
        ..TestAttr::default()
    };
    test_run(&mut attr).context("BPF_PROG_TEST_RUN")?;
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        action: attr.retval,
        output: out,
        duration_ns: attr.duration,
    })
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`.
#[repr(C)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: redirects and XDP_PASS really happen.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Runs XDP program `fd` on `repeat` copies of `frame` as if each arrived
/// on interface `ifindex` (of the calling thread's network namespace),
/// queue 0, in live-frames mode: a redirected frame is sent, a passed one
/// goes up the stack. A packet generator inside the kernel (this kernel
/// has no pktgen); the benchmark's. Returns the kernel's time per frame in
/// nanoseconds: its loop over the frames (the program, the redirects and
/// whatever the stack does with a passed frame before the call returns),
/// without the set-up of its page pool.
pub fn run_xdp_live(
    fd: std::os::fd::RawFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> anyhow::Result<u32> {
    run_xdp_on(fd, frame, ifindex, repeat, BPF_F_TEST_XDP_LIVE_FRAMES)
        .context("BPF_PROG_TEST_RUN (live frames)")
}

/// Runs XDP program `fd` `repeat` times on one buffer holding `frame`,
/// arriving on interface `ifindex`, nothing sent: the program's own time
/// per run, in nanoseconds. The buffer is not reset between runs (a
/// program that moves its start sees the moved frame next time).
pub fn time_xdp(
    fd: std::os::fd::RawFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> anyhow::Result<u32> {
    run_xdp_on(fd, frame, ifindex, repeat, 0).context("BPF_PROG_TEST_RUN")
}

/// BPF_PROG_TEST_RUN of XDP program `fd` on `frame` arriving on `ifindex`
/// with `flags`: the average time per run.
fn run_xdp_on(
    fd: std::os::fd::RawFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    flags: u32,
) -> std::io::Result<u32> {
    let ctx = XdpMd {
        data: 0,
        data_end: frame.len() as u32,
        data_meta: 0,
        ingress_ifindex: ifindex,
        rx_queue_index: 0,
        egress_ifindex: 0,
    };
    let mut attr = TestAttr {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: repeat.max(1),
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags,
        ..TestAttr::default()
    };
    test_run(&mut attr)?;
    Ok(attr.duration)
}
