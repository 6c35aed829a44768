//! Keeps XDP forwarding's route cache honest (decisions #54): every
//! change the kernel announces to routes, rules, nexthops, neighbours,
//! addresses, links or forwarding settings moves the cache's generation
//! on, which invalidates every entry at once (the next packet of each
//! flow asks the FIB again). With policy rules beyond the kernel's three
//! defaults the cache is off (generation 0): a rule may select on ports
//! or marks the cache's key does not hold.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{atomic::Ordering, Arc, Mutex},
};

use anyhow::Context as _;
use aya::Ebpf;

use super::xdp_forward::XdpForward;

/// rtnetlink multicast groups (linux/rtnetlink.h `RTNLGRP_*`).
const GROUPS: [u32; 7] = [
    1,  // LINK
    3,  // NEIGH
    5,  // IPV4_IFADDR
    7,  // IPV4_ROUTE
    8,  // IPV4_RULE
    24, // IPV4_NETCONF
    32, // NEXTHOP
];
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const SOL_NETLINK: libc::c_int = 270;

/// A netlink socket subscribed to `GROUPS`.
fn subscribe() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket calls on a descriptor owned below.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        anyhow::ensure!(
            fd >= 0,
            "netlink socket: {}",
            std::io::Error::last_os_error()
        );
        let sock = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let rc = libc::bind(
            fd,
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        anyhow::ensure!(rc == 0, "netlink bind: {}", std::io::Error::last_os_error());
        for g in GROUPS {
            let rc = libc::setsockopt(
                fd,
                SOL_NETLINK,
                NETLINK_ADD_MEMBERSHIP,
                &g as *const u32 as *const libc::c_void,
                4,
            );
            anyhow::ensure!(
                rc == 0,
                "netlink group {g}: {}",
                std::io::Error::last_os_error()
            );
        }
        let size: libc::c_int = 1 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            4,
        );
        Ok(sock)
    }
}

/// Whether the IPv4 policy rules are the kernel's defaults only (local,
/// main, default).
fn default_rules() -> bool {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-4", "-j", "rule", "show"])
        .output()
    else {
        return false;
    };
    let Ok(rules) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) else {
        return false;
    };
    let defaults = [(0, "local"), (32766, "main"), (32767, "default")];
    rules.len() == defaults.len()
        && rules.iter().zip(defaults).all(|(r, (prio, table))| {
            r["priority"].as_u64() == Some(prio)
                && r["table"] == table
                && r["src"] == "all"
                && r.as_object().is_some_and(|o| o.len() == 3)
        })
}

/// Writes the next generation (never 0), or 0 when the cache must be off.
fn advance(ebpf: &Mutex<Ebpf>, on: bool) -> anyhow::Result<()> {
    let mut ebpf = ebpf.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    crate::dataplane::cache_gen::set(&mut ebpf, on)
}

/// Starts the watcher thread (it lives as long as the process).
pub fn spawn(ebpf: Arc<Mutex<Ebpf>>, fwd: Arc<XdpForward>) -> anyhow::Result<()> {
    let sock = subscribe()?;
    let mut on = default_rules();
    fwd.route_cache.store(on, Ordering::Relaxed);
    advance(&ebpf, on)?;
    std::thread::Builder::new()
        .name("route-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: reading into a buffer we own, of its length.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        // Announcements were lost: assume anything changed.
                        Some(libc::ENOBUFS) | Some(libc::EINTR) => {}
                        _ => {
                            log::warn!("route watch stopped ({e}): route cache off");
                            let _ = advance(&ebpf, false);
                            fwd.route_cache.store(false, Ordering::Relaxed);
                            return;
                        }
                    }
                } else if rules_changed(&buf[..n as usize]) {
                    on = default_rules();
                    fwd.route_cache.store(on, Ordering::Relaxed);
                }
                if let Err(e) = advance(&ebpf, on) {
                    log::warn!("route cache: {e:#}");
                }
            }
        })
        .context("start the route watch thread")?;
    Ok(())
}

/// Whether a datagram of netlink messages holds a rule change.
fn rules_changed(mut d: &[u8]) -> bool {
    while d.len() >= 16 {
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let kind = u16::from_ne_bytes([d[4], d[5]]);
        if kind == RTM_NEWRULE || kind == RTM_DELRULE {
            return true;
        }
        // Messages are 4-byte aligned.
        let step = (len + 3) & !3;
        if len < 16 || step > d.len() {
            break;
        }
        d = &d[step..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, payload: usize) -> Vec<u8> {
        let len = 16 + payload;
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.resize(len, 0);
        m.resize((len + 3) & !3, 0);
        m
    }

    #[test]
    fn rule_changes_are_found_among_other_messages() {
        let route = msg(24, 13); // RTM_NEWROUTE, unaligned payload
        let rule = msg(RTM_DELRULE, 8);
        assert!(!rules_changed(&route));
        assert!(rules_changed(&[route.clone(), rule].concat()));
        assert!(!rules_changed(&[route, msg(28, 4)].concat()));
        assert!(!rules_changed(&[1, 2, 3]));
        assert!(!rules_changed(&msg(RTM_NEWRULE, 0)[..15]));
    }
}
