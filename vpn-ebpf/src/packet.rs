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
    // SAFETY: `ptr_at` proved the bytes lie inside the packet; unaligned reads are
    // fine for BPF on the targets we run on, but say so explicitly.
    Ok(unsafe { core::ptr::read_unaligned(p) })
}
