//! Bounds-checked access to packet bytes: the only place that forms packet pointers.
use vpn_common::counters::DropReason;

/// Returns a pointer to a `T` at `offset` bytes into `[start, end)`, or
/// `Truncated` if the packet is too short.
#[inline(always)]
pub fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Result<*const T, DropReason> {
    let len = core::mem::size_of::<T>();
    if start + offset + len > end {
        return Err(DropReason::Truncated);
    }
    Ok((start + offset) as *const T)
}

/// Reads a `T` at `offset` (see [`ptr_at`]).
#[inline(always)]
pub fn read_at<T: Copy>(start: usize, end: usize, offset: usize) -> Result<T, DropReason> {
    let p = ptr_at::<T>(start, end, offset)?;
    // SAFETY: `ptr_at` proved the bytes lie inside the packet.
    Ok(unsafe { load(p) })
}

/// A `T` of even size, built in an aligned buffer.
#[repr(C, align(8))]
struct Aligned<T>(core::mem::MaybeUninit<T>);

/// The `T` at `p`, in 8-byte loads and then 16-bit ones when its size is
/// even: a Rust unaligned read is a load per byte in BPF, plus the shifts
/// and ORs that put them together. Wide unaligned loads (which the
/// verifier allows on the architectures with efficient unaligned access
/// the gateway runs on) are a fraction of that.
///
/// # Safety
/// `[p, p + size_of::<T>())` is readable packet memory, and any bit
/// pattern is a valid `T` (the wire structs: integers and byte arrays).
#[inline(always)]
unsafe fn load<T: Copy>(p: *const T) -> T {
    let n = core::mem::size_of::<T>();
    if cfg!(target_arch = "bpf") && n.is_multiple_of(2) {
        let mut buf = Aligned::<T>(core::mem::MaybeUninit::uninit());
        let dst = buf.0.as_mut_ptr().cast::<u8>();
        let src = p.cast::<u8>();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: within `T` on both sides; `dst + i` is 8-aligned
            // (the buffer is); the bytes keep their order.
            unsafe { dst.add(i).cast::<u64>().write(load64(src.add(i))) };
            i += 8;
        }
        while i < n {
            // SAFETY: as above, 2-aligned.
            unsafe { dst.add(i).cast::<u16>().write(load16(src.add(i))) };
            i += 2;
        }
        // SAFETY: every byte was written; any bit pattern is a valid `T`.
        unsafe { buf.0.assume_init() }
    } else {
        // SAFETY: as the caller promises.
        unsafe { core::ptr::read_unaligned(p) }
    }
}

/// The two bytes at `p` as they lie in memory, in one load.
///
/// # Safety
/// `[p, p + 2)` is readable packet memory.
#[inline(always)]
pub unsafe fn load16(p: *const u8) -> u16 {
    #[cfg(target_arch = "bpf")]
    {
        let v: u64;
        // SAFETY: as the caller promises; a plain load, no other effect.
        unsafe {
            core::arch::asm!(
                "{v} = *(u16 *)({p} + 0)",
                p = in(reg) p,
                v = out(reg) v,
                options(nostack, readonly, pure),
            );
        }
        v as u16
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as the caller promises.
    unsafe {
        p.cast::<u16>().read_unaligned()
    }
}

/// The eight bytes at `p` as they lie in memory, in one load.
///
/// # Safety
/// `[p, p + 8)` is readable packet memory.
#[inline(always)]
pub unsafe fn load64(p: *const u8) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let v: u64;
        // SAFETY: as the caller promises; a plain load, no other effect.
        unsafe {
            core::arch::asm!(
                "{v} = *(u64 *)({p} + 0)",
                p = in(reg) p,
                v = out(reg) v,
                options(nostack, readonly, pure),
            );
        }
        v
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as the caller promises.
    unsafe {
        p.cast::<u64>().read_unaligned()
    }
}

/// The `N` bytes at `offset` of `[start, end)`, to write with [`store`],
/// or `Truncated`.
#[inline(always)]
pub fn bytes_mut<const N: usize>(
    start: usize,
    end: usize,
    offset: usize,
) -> Result<*mut u8, DropReason> {
    Ok(ptr_at::<[u8; N]>(start, end, offset)?
        .cast::<u8>()
        .cast_mut())
}

/// Stores the low `W` (8, 4 or 2) bytes of `v` at `p`, in memory order on
/// this little-endian target, unaligned, in one instruction.
///
/// # Safety
/// `[p, p + W)` is writable packet memory.
#[inline(always)]
pub unsafe fn store<const W: usize>(p: *mut u8, v: u64) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: as the caller promises; a plain store, no other effect.
    unsafe {
        match W {
            8 => {
                core::arch::asm!("*(u64 *)({p} + 0) = {v}", p = in(reg) p, v = in(reg) v, options(nostack))
            }
            4 => {
                core::arch::asm!("*(u32 *)({p} + 0) = {v}", p = in(reg) p, v = in(reg) v, options(nostack))
            }
            _ => {
                core::arch::asm!("*(u16 *)({p} + 0) = {v}", p = in(reg) p, v = in(reg) v, options(nostack))
            }
        }
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as the caller promises.
    unsafe {
        let b = v.to_ne_bytes();
        core::ptr::copy_nonoverlapping(b.as_ptr(), p, W);
    }
}
