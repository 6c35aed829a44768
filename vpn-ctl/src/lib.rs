//! vpn-ctl: the gateway daemon, its CLI, the BPF loader and host networking.
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod doctor;
pub mod fsutil;
pub mod import;
pub mod metrics;
pub mod net;
pub mod report;
pub mod secrets;
pub mod users;

/// The compiled eBPF object (built by build.rs from `vpn-ebpf`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vpn-ebpf"));
