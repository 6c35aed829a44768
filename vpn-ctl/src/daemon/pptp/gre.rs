//! The raw GRE socket: every PPTP call's data arrives here (the kernel
//! passes IP protocol 47 to raw sockets; XDP lets it through). A thread
//! reads it, finds the call by its call ID (and checks the sender), feeds
//! the PPP link and writes the IP packets to vpn0.
use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use vpn_proto::pptp::gre::GreHeader;

use crate::{daemon::Shared, net::batch};

pub fn open_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket call; the fd is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(vpn_common::wire::IPPROTO_GRE),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .map_err(|e| anyhow::anyhow!("cannot open a raw GRE socket for PPTP: {e}"));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    batch::set_buffers(fd.as_raw_fd(), batch::SOCKET_BUFFER);
    Ok(fd)
}

/// Sends a GRE packet (header and payload) to `dst`; the kernel adds IPv4.
pub fn send(fd: RawFd, gre: &[u8], dst: Ipv4Addr) -> std::io::Result<()> {
    batch::send_to(fd, gre, std::net::SocketAddr::from((dst, 0)))
}

/// Starts the reader thread. `tun`: a vpn0 queue to write decapsulated IP to.
pub fn spawn_reader(shared: Arc<Shared>, tun: OwnedFd) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("vpn-pptp-gre".into())
        .spawn(move || {
            if let Err(e) = run(&shared, tun.as_raw_fd()) {
                log::error!("pptp: GRE reader stopped: {e}");
            }
        })
        .expect("spawn GRE thread")
}

fn run(shared: &Shared, tun: RawFd) -> std::io::Result<()> {
    let pptp = &shared.pptp;
    let Some(fd) = pptp.gre_fd() else {
        return Ok(());
    };
    let mut buf = vec![0u8; 65536];
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let ready = batch::poll_readable(&[fd], Duration::from_millis(200))?;
        if !ready[0] {
            continue;
        }
        let mut touched: Vec<Arc<super::Call>> = Vec::new();
        while let Some(n) = recv(fd, &mut buf)? {
            if let Some(call) = packet(shared, &mut buf[..n], tun) {
                if !touched.iter().any(|c| c.call_id == call.call_id) {
                    touched.push(call);
                }
            }
        }
        // Acknowledge each burst at once: the client's send window waits on it.
        for call in touched {
            let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.ack_owed {
                let mut ack = Vec::new();
                super::gre_ack(&call, &mut s, pptp.seq.as_ref(), &mut ack);
                let _ = send(fd, &ack, call.peer);
            }
        }
    }
}

fn recv(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    // SAFETY: reading into an owned buffer of the given length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// One IPv4 packet of protocol GRE, as the raw socket delivers it.
/// Returns the call it belonged to.
fn packet(shared: &Shared, p: &mut [u8], tun: RawFd) -> Option<Arc<super::Call>> {
    let pptp = &shared.pptp;
    let bad = |c: &std::sync::atomic::AtomicU64| {
        c.fetch_add(1, Ordering::Relaxed);
        None
    };
    if p.len() < 20 || p[0] >> 4 != 4 {
        return bad(&pptp.counters.gre_malformed);
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let Some(gre) = p.get(ihl..).and_then(GreHeader::decode) else {
        return bad(&pptp.counters.gre_malformed);
    };
    let Some(call) = pptp.by_id(gre.call_id) else {
        return bad(&pptp.counters.gre_unknown_call);
    };
    if call.peer != src {
        // A guessed call ID from elsewhere: never trusted.
        return bad(&pptp.counters.gre_wrong_peer);
    }
    let start = ihl + gre.len();
    let payload = &mut p[start..start + usize::from(gre.payload_len)];
    let now = Instant::now();
    let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(seq) = gre.seq {
        // Acknowledge the highest sequence number seen (RFC 2637 §4.4).
        let newer = s
            .seq_in
            .is_none_or(|cur| (seq.wrapping_sub(cur) as i32) > 0);
        if newer {
            s.seq_in = Some(seq);
        }
        s.ack_owed = true;
    }
    if payload.is_empty() {
        return None; // an ack-only packet
    }
    // PPP control frames (anything but IP and MPPE data) are rate-limited per
    // call: a flood costs one counter increment each, not a reply.
    let is_data = matches!(
        vpn_proto::ppp::link::parse_frame(payload),
        Some((0x0021 | 0x00fd, _))
    );
    if !is_data && !s.control_budget.take(now) {
        s.drops += 1;
        pptp.counters.ppp_flood.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut s.flood_logged, true) {
            log::warn!(
                "pptp: session {} ({}): PPP control flood from {}; dropping control frames over {} per second",
                call.row_id,
                s.user.as_deref().unwrap_or("-"),
                call.peer,
                super::CONTROL_RATE
            );
        }
        drop(s);
        return Some(call);
    }
    let users = &shared.users;
    let lookup = |name: &str| {
        let db = users.lock().unwrap_or_else(|e| e.into_inner());
        db.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.password.clone())
    };
    match s.link.input(now, payload, &lookup) {
        Ok(Some(range)) => {
            let ip = &payload[range];
            // Anti-spoofing: only the call's own address may be a source.
            let src_ok =
                ip.len() >= 20 && s.addr == Some(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            if src_ok {
                s.rx_packets += 1;
                s.rx_bytes += ip.len() as u64;
                let _ = batch::write_fd(tun, ip);
            } else {
                s.drops += 1;
                pptp.counters.ppp_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(None) => {}
        Err(_) => {
            s.drops += 1;
            pptp.counters.ppp_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    super::timers::process(shared, &call, &mut s, now);
    drop(s);
    Some(call)
}

/// A packet from vpn0 for a PPTP call's address: PPP, GRE, out.
pub fn packet_out(shared: &Shared, call: &super::Call, ip: &[u8]) -> bool {
    let Some(fd) = shared.pptp.gre_fd() else {
        return false;
    };
    let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut ppp = Vec::with_capacity(ip.len() + 8);
    if !s.link.encap_ip(ip, &mut ppp) {
        return false;
    }
    let mut out = Vec::with_capacity(ppp.len() + 16);
    super::gre_encap(call, &mut s, shared.pptp.seq.as_ref(), &ppp, &mut out);
    s.tx_packets += 1;
    s.tx_bytes += ip.len() as u64;
    send(fd, &out, call.peer).is_ok()
}
