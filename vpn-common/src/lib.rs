//! Types shared by the eBPF programs (`vpn-ebpf`) and userspace (`vpn-ctl`).
//!
//! Everything here is `#[repr(C)]` with explicit padding and a compile-time size
//! check, so that the kernel and userspace can never disagree about a layout.
#![no_std]

pub mod counters;
pub mod maps;
pub mod wire;

#[cfg(feature = "user")]
mod pod;
