//! Host networking: netlink, the TUN device, sysctls, nftables, the host
//! firewall and port ownership.
pub mod batch;
pub mod firewall;
pub mod netlink;
pub mod nft;
pub mod pool;
pub mod ports;
pub mod prefix;
pub mod sysctl;
pub mod tun;

/// The index of interface `name` in the current network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}
