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

/// Our address the kernel picks as the source toward `peer` (the address a
/// client reaches us on, for a socket bound to the wildcard address).
pub fn route_source(peer: std::net::SocketAddrV4) -> std::net::Ipv4Addr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(peer)?;
            s.local_addr()
        })
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
}
