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

use super::{Pptp, PptpCall};
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
    let Some(pptp) = &shared.pptp else {
        return Ok(());
    };
    let fd = pptp.gre.as_raw_fd();
    let mut buf = vec![0u8; 65536];
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let ready = batch::poll_readable(&[fd], Duration::from_millis(200))?;
        if !ready[0] {
            continue;
        }
        let mut touched: Vec<Arc<PptpCall>> = Vec::new();
        while let Some(n) = recv(fd, &mut buf)? {
            if let Some(call) = packet(pptp, &mut buf[..n], tun) {
                if !touched.iter().any(|c| Arc::ptr_eq(c, &call)) {
                    touched.push(call);
                }
            }
        }
        // Acknowledge each burst at once: the client's send window waits on it.
        for call in touched {
            let mut s = call.lock();
            if s.wire.ack_owed {
                let s = &mut *s;
                call.carrier.ack(&mut s.wire, s.ppp.fast.as_ref());
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
fn packet(pptp: &Pptp, p: &mut [u8], tun: RawFd) -> Option<Arc<PptpCall>> {
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
    if call.carrier.peer != src {
        // A guessed call ID from elsewhere: never trusted.
        return bad(&pptp.counters.gre_wrong_peer);
    }
    let start = ihl + gre.len();
    let payload = &mut p[start..start + usize::from(gre.payload_len)];
    let mut s = call.lock();
    if let Some(seq) = gre.seq {
        // Acknowledge the highest sequence number seen (RFC 2637 §4.4).
        let w = &mut s.wire;
        if w.seq_in
            .is_none_or(|cur| (seq.wrapping_sub(cur) as i32) > 0)
        {
            w.seq_in = Some(seq);
        }
        w.ack_owed = true;
    }
    if !payload.is_empty() {
        call.frame_in(&mut s, payload, tun, Instant::now());
    }
    drop(s);
    Some(call)
}
