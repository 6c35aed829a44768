//! Who listens on which port: /proc/net/{tcp,udp} of this network
//! namespace, and the process holding each socket (by inode, from
//! /proc/PID/fd).
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: &'static str,
    pub port: u16,
    /// "pid 1234 (xl2tpd)", or None when no process could be named.
    pub owner: Option<String>,
    pub pid: Option<u32>,
}

/// Parses /proc/net/tcp or udp: (local port, inode) of listening TCP
/// sockets (state 0A) or bound UDP sockets (state 07).
pub fn parse_proc_net(text: &str, tcp: bool) -> Vec<(u16, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let state = *f.get(3)?;
            let listening = if tcp { state == "0A" } else { state == "07" };
            let inode = f.get(9)?.parse().ok()?;
            listening.then_some((port, inode))
        })
        .collect()
}

/// socket inode → (pid, command name), over every process.
fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(p.path().join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse().ok())
            {
                out.insert(inode, (pid, comm.clone()));
            }
        }
    }
    out
}

/// Every listening TCP and bound UDP port of this namespace.
pub fn listeners() -> Vec<Listener> {
    let owners = socket_owners();
    let mut out = Vec::new();
    for (file, proto, tcp) in [
        ("/proc/net/tcp", "tcp", true),
        ("/proc/net/udp", "udp", false),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (port, inode) in parse_proc_net(&text, tcp) {
            let o = owners.get(&inode);
            out.push(Listener {
                proto,
                port,
                owner: o.map(|(pid, comm)| format!("pid {pid} ({comm})")),
                pid: o.map(|(pid, _)| *pid),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                   0: 00000000:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
                   1: 0100007F:0035 0A000001:0035 01 00000000:00000000 00:00000000 00000000     0        0 77 2 0000000000000000 0\n";
        assert_eq!(parse_proc_net(udp, false), vec![(500, 4242)]);
        let tcp = "header\n 0: 00000000:06BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99 1 0 100 0 0 10 0\n";
        assert_eq!(parse_proc_net(tcp, true), vec![(1723, 99)]);
        assert!(parse_proc_net("header\ngarbage\n", true).is_empty());
    }
}
