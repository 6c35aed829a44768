//! Host networking: netlink, the TUN device, sysctls, nftables, the host
//! firewall and port ownership.
pub mod batch;
pub mod bypass;
pub mod firewall;
pub mod netlink;
pub mod nft;
pub mod pool;
pub mod ports;
pub mod prefix;
pub mod sysctl;
pub mod tun;

/// An interface ioctl on `name` (an ioctl: /sys/class/net shows the
/// namespace sysfs was mounted in, not necessarily ours).
fn if_ioctl(name: &str, request: libc::c_ulong) -> Option<libc::ifreq> {
    use std::os::fd::AsRawFd as _;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // SAFETY: an all-zero ifreq is valid; the name is copied in bounds.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: the SIOCGIF* requests used here read the name and write the union of `req`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) };
    (r == 0).then_some(req)
}

/// The MTU of interface `name` in the current network namespace.
pub fn mtu(name: &str) -> Option<u32> {
    let req = if_ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: after a successful SIOCGIFMTU the union holds the MTU.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// The Ethernet address of interface `name` in the current network namespace.
pub fn mac(name: &str) -> Option<[u8; 6]> {
    let req = if_ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds a sockaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return None;
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Some(mac)
}

/// The largest PPP MRU whose frames, with `overhead` bytes of tunnel
/// headers, fit a WAN of `wan_mtu` (never above `max`, never below 576).
pub fn ppp_mru(wan_mtu: Option<u32>, overhead: u32, max: u16) -> u16 {
    let fit = wan_mtu.map_or(u32::from(max), |m| m.saturating_sub(overhead));
    fit.clamp(576, u32::from(max)) as u16
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn ppp_mrus_fit_the_wan() {
        assert_eq!(super::ppp_mru(Some(1500), 140, 1360), 1360);
        assert_eq!(super::ppp_mru(Some(9000), 100, 1400), 1400);
        // A cloud's 1460 and PPPoE's 1492.
        assert_eq!(super::ppp_mru(Some(1460), 140, 1360), 1320);
        assert_eq!(super::ppp_mru(Some(1492), 100, 1400), 1392);
        assert_eq!(super::ppp_mru(Some(600), 140, 1360), 576);
        assert_eq!(super::ppp_mru(None, 100, 1400), 1400);
        assert_eq!(super::mtu("lo"), Some(65536));
        assert_eq!(super::mtu("no-such-if0"), None);
    }
}
