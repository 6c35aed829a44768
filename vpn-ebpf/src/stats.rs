//! Per-CPU counters: no atomics needed, userspace sums the CPUs.
use vpn_common::counters::{Counter, DropReason};

use crate::maps::{DROPS, STATS};

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn drop(reason: DropReason) {
    if let Some(slot) = DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: as above.
        unsafe { *slot += 1 };
    }
}
