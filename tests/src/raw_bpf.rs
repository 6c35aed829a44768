//! BPF programs of a few instructions, written out, for benchmarks'
//! baselines and receivers, and the syscalls around them: load, look up
//! by id, attach with a bpf_link.
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::Context as _;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
/// The helper `bpf_redirect(ifindex, flags)`.
const HELPER_REDIRECT: i32 = 23;
/// The helper `bpf_xdp_adjust_head(ctx, delta)`.
const HELPER_ADJUST_HEAD: i32 = 44;
/// The helper `bpf_tail_call(ctx, prog_array, index)`.
const HELPER_TAIL_CALL: i32 = 12;

pub fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
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

/// One instruction: opcode, registers, offset, immediate.
fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    u64::from_le_bytes([op, dst | (src << 4), o[0], o[1], i[0], i[1], i[2], i[3]])
}

const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const SUB64_REG: u8 = 0x1f;
const LDX_W: u8 = 0x61;
const ST_W: u8 = 0x62;
const STX_DW: u8 = 0x7b;
const JGT_REG: u8 = 0x2d;
const LD_IMM64: u8 = 0x18;
/// `src_reg` of LD_IMM64: the immediate is a map's descriptor.
const PSEUDO_MAP_FD: u8 = 1;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// Loads an XDP program of `insns`, named `name` (at most 15 bytes).
fn load_xdp(name: &str, insns: &[u64]) -> anyhow::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut prog_name = [0u8; 16];
    prog_name[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_XDP,
        ..ProgLoad::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr).with_context(|| format!("BPF_PROG_LOAD of {name}"))?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `r0 = XDP_PASS; exit`.
pub fn load_xdp_pass() -> anyhow::Result<OwnedFd> {
    load_xdp(
        "xdp_pass",
        &[insn(MOV64_IMM, 0, 0, 0, 2), insn(EXIT, 0, 0, 0, 0)],
    )
}

/// `r0 = XDP_DROP; exit`: a receiver that counts (in the device's
/// statistics) without the stack's cost.
pub fn load_xdp_drop() -> anyhow::Result<OwnedFd> {
    load_xdp(
        "xdp_drop",
        &[insn(MOV64_IMM, 0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)],
    )
}

/// `return bpf_redirect(ifindex, 0)`: plain XDP forwarding, a baseline.
pub fn load_xdp_redirect(ifindex: u32) -> anyhow::Result<OwnedFd> {
    load_xdp(
        "xdp_redirect",
        &[
            insn(MOV64_IMM, 1, 0, 0, ifindex as i32),
            insn(MOV64_IMM, 2, 0, 0, 0),
            insn(CALL, 0, 0, 0, HELPER_REDIRECT),
            insn(EXIT, 0, 0, 0, 0),
        ],
    )
}

/// A one-slot program array holding `prog`, for a tail call into it.
pub fn prog_array_with(prog: &OwnedFd) -> anyhow::Result<OwnedFd> {
    // map_type, key_size, value_size, max_entries, map_flags
    let mut attr: [u32; 5] = [BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1, 0];
    let fd = bpf(BPF_MAP_CREATE, &mut attr).context("BPF_MAP_CREATE of a program array")?;
    // SAFETY: the kernel just gave us this descriptor.
    let map = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let (key, value) = (0u32, prog.as_raw_fd() as u32);
    #[repr(C)]
    struct Update {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut up = Update {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut up).context("put the program in the program array")?;
    Ok(map)
}

/// A generator's first stage for BPF_PROG_TEST_RUN in live-frames mode:
/// the kernel reuses each frame's page without copying the test data in
/// again, so a program that rewrote the headers (decapsulated, say) would
/// be handed its own output next time. This one writes `prefix` (the
/// frame's first bytes, a multiple of 4) back over the frame, then tail
/// calls the program in slot 0 of `progs` (XDP_DROP if that fails).
pub fn load_xdp_restore_then(prefix: &[u8], progs: &OwnedFd) -> anyhow::Result<OwnedFd> {
    load_xdp("xdp_restore", &restore_then(&[], prefix, progs)?)
}

/// As `load_xdp_restore_then`, for BPF_PROG_TEST_RUN without live frames,
/// which hands every run the same buffer as the last one left it: the
/// frame's start is first moved back to where a frame of `len` bytes
/// starts (a program that decapsulated or encapsulated moved it).
pub fn load_xdp_reset_then(len: usize, prefix: &[u8], progs: &OwnedFd) -> anyhow::Result<OwnedFd> {
    let reset = [
        insn(MOV64_REG, 6, 1, 0, 0),             // r6 = ctx
        insn(LDX_W, 2, 1, 0, 0),                 // r2 = data
        insn(LDX_W, 3, 1, 4, 0),                 // r3 = data_end
        insn(SUB64_REG, 3, 2, 0, 0),             // r3 = data_end - data
        insn(ADD64_IMM, 3, 0, 0, -(len as i32)), // r3 -= len: the head's delta
        insn(MOV64_REG, 2, 3, 0, 0),             // r2 = delta
        insn(MOV64_REG, 1, 6, 0, 0),             // r1 = ctx
        insn(CALL, 0, 0, 0, HELPER_ADJUST_HEAD),
        insn(MOV64_REG, 1, 6, 0, 0), // r1 = ctx
    ];
    load_xdp("xdp_reset", &restore_then(&reset, prefix, progs)?)
}

/// `before`, then the stores of `prefix` and the tail call.
fn restore_then(before: &[u64], prefix: &[u8], progs: &OwnedFd) -> anyhow::Result<Vec<u64>> {
    anyhow::ensure!(
        prefix.len().is_multiple_of(4),
        "the prefix must be whole words"
    );
    let (dwords, tail) = (prefix.len() / 8, prefix.len() % 8 / 4);
    let mut p = before.to_vec();
    p.extend([
        insn(MOV64_REG, 6, 1, 0, 0),                            // r6 = ctx
        insn(LDX_W, 2, 1, 0, 0),                                // r2 = data
        insn(LDX_W, 3, 1, 4, 0),                                // r3 = data_end
        insn(MOV64_REG, 4, 2, 0, 0),                            // r4 = data
        insn(ADD64_IMM, 4, 0, 0, prefix.len() as i32),          // r4 += len
        insn(JGT_REG, 4, 3, (3 * dwords + tail) as i16 + 5, 0), // too short: to the drop
    ]);
    // In 8-byte stores, as a copy of the frame would write it: a narrower
    // store under a wider load of the program's is not forwarded to it,
    // and the load waits for the store to reach the cache (decisions #64).
    for (i, w) in prefix.chunks(8).enumerate() {
        let off = (i * 8) as i16;
        if let Ok(w) = <[u8; 8]>::try_from(w) {
            let v = u64::from_le_bytes(w);
            p.extend([
                insn(LD_IMM64, 4, 0, 0, v as u32 as i32), // r4 = w
                insn(0, 0, 0, 0, (v >> 32) as u32 as i32),
                insn(STX_DW, 2, 4, off, 0), // *(u64 *)(data + off) = r4
            ]);
        } else {
            let v = i32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            p.push(insn(ST_W, 2, 0, off, v)); // *(u32 *)(data + off) = w
        }
    }
    p.extend([
        insn(MOV64_REG, 1, 6, 0, 0), // r1 = ctx
        insn(LD_IMM64, 2, PSEUDO_MAP_FD, 0, progs.as_raw_fd()),
        insn(0, 0, 0, 0, 0), // r2 = progs (second half of the 16-byte load)
        insn(MOV64_IMM, 3, 0, 0, 0), // r3 = 0
        insn(CALL, 0, 0, 0, HELPER_TAIL_CALL),
        insn(MOV64_IMM, 0, 0, 0, 1), // r0 = XDP_DROP
        insn(EXIT, 0, 0, 0, 0),
    ]);
    Ok(p)
}

/// A descriptor of the loaded program with this id.
pub fn prog_by_id(id: u32) -> anyhow::Result<OwnedFd> {
    let mut attr: [u32; 3] = [id, 0, 0];
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .with_context(|| format!("BPF_PROG_GET_FD_BY_ID {id}"))?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The start of `struct bpf_prog_info`, as far as the JIT image (the
/// kernel fills no more than the size passed).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
}

/// The machine code the kernel's JIT made of `prog` (for `objdump -b
/// binary`: perf's `symoff` offsets index it).
pub fn jited_image(prog: &OwnedFd) -> anyhow::Result<Vec<u8>> {
    let info_of = |info: &mut ProgInfo| {
        let mut attr = InfoByFd {
            bpf_fd: prog.as_raw_fd() as u32,
            info_len: std::mem::size_of::<ProgInfo>() as u32,
            info: info as *mut ProgInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).context("BPF_OBJ_GET_INFO_BY_FD")
    };
    let mut info = ProgInfo::default();
    info_of(&mut info)?;
    let mut image = vec![0u8; info.jited_prog_len as usize];
    info = ProgInfo {
        jited_prog_len: info.jited_prog_len,
        jited_prog_insns: image.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    info_of(&mut info)?;
    image.truncate(info.jited_prog_len as usize);
    Ok(image)
}

/// `union bpf_attr`'s `info` member.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Attaches XDP program `prog` to interface `ifindex` (of the calling
/// thread's network namespace) with a bpf_link; detached when the link's
/// descriptor is closed.
pub fn attach_xdp(prog: &OwnedFd, ifindex: u32) -> anyhow::Result<OwnedFd> {
    // prog_fd, target_ifindex, attach_type, flags (0: native where the
    // driver has it), then the rest of the union zeroed.
    let mut attr: [u32; 8] = [prog.as_raw_fd() as u32, ifindex, BPF_XDP, 0, 0, 0, 0, 0];
    let fd = bpf(BPF_LINK_CREATE, &mut attr)
        .with_context(|| format!("BPF_LINK_CREATE XDP on ifindex {ifindex}"))?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
