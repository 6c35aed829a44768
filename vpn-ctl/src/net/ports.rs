//! Binding the service ports, and naming the process that holds a busy one.
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    os::fd::OwnedFd,
};

use crate::config::ListenerSpec;

/// A bound socket of a service.
pub struct BoundSocket {
    pub spec: ListenerSpec,
    pub fd: OwnedFd,
}

/// Binds `spec` on all IPv4 addresses. The error is one line naming the owner.
pub fn bind(spec: ListenerSpec) -> anyhow::Result<BoundSocket> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, spec.port));
    let res = match (spec.proto, spec.service) {
        ("tcp", _) => TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(OwnedFd::from(l))
        }),
        // The native and NAT-T data paths bind one socket per worker on
        // their port (the kernel keeps each client's flow on one).
        ("udp", "native" | "ike-natt") => super::batch::udp_reuseport(spec.port),
        _ => UdpSocket::bind(addr).and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(OwnedFd::from(s))
        }),
    };
    match res {
        Ok(fd) => Ok(BoundSocket { spec, fd }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let who = owner(spec.proto, spec.port)
                .map(|(pid, comm)| format!(" by pid {pid} ({comm})"))
                .unwrap_or_default();
            anyhow::bail!(
                "{} port {} is in use{who}",
                spec.proto.to_uppercase(),
                spec.port
            )
        }
        Err(e) => anyhow::bail!(
            "cannot bind {} port {}: {e}",
            spec.proto.to_uppercase(),
            spec.port
        ),
    }
}

/// Socket inodes bound to local `port` in /proc/net/{proto,proto6}.
fn socket_inodes(proto: &str, port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for file in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // TCP: only listeners (state 0A) hold the port for bind().
            if lport == Some(port) && (proto != "tcp" || *state == "0A") {
                if let Ok(i) = inode.parse() {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// (pid, command name) of a process holding `proto` port `port`. Tried
/// three times: /proc/net/* is read in pieces, and a socket table that
/// changes between them (other processes' sockets opening and closing)
/// can leave a line out of one reading.
pub fn owner(proto: &str, port: u16) -> Option<(u32, String)> {
    (0..3).find_map(|_| owner_once(proto, port))
}

fn owner_once(proto: &str, port: u16) -> Option<(u32, String)> {
    let inodes = socket_inodes(proto, port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    let comm = std::fs::read_to_string(entry.path().join("comm"))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_default();
                    return Some((pid, comm));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_names_this_process() {
        let held = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let spec = ListenerSpec {
            service: "test",
            proto: "udp",
            port,
        };
        let err = bind(spec).err().unwrap().to_string();
        let me = std::process::id();
        assert!(
            err.starts_with(&format!("UDP port {port} is in use by pid {me} (")),
            "{err}"
        );
    }
}
