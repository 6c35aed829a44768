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
    // SAFETY: `attr` points at live buffers of the stated sizes for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_PROG_TEST_RUN");
    }
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        action: attr.retval,
        output: out,
        duration_ns: attr.duration,
    })
}
