//! The client's data path: one thread polling its TUN device and UDP socket,
//! batching datagrams in and out, and running the session's timers. Returns
//! when the session ends, with why.
use std::{
    net::SocketAddr,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use vpn_proto::native::{
    messages::Reason,
    session::{Event, Session},
};

use crate::net::batch::{self, RecvBatch, SendBatch, BATCH};

pub enum Ended {
    /// The gateway said BYE.
    Closed(Reason, String),
    /// No authentic packet for the dead-peer interval.
    PeerDead,
    /// We were asked to stop (signal).
    Stopped,
}

/// Longest wait in poll, so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(200);

pub fn run(
    session: &mut Session,
    tun: &OwnedFd,
    udp: &OwnedFd,
    server: SocketAddr,
    stop: &AtomicBool,
) -> std::io::Result<Ended> {
    let (tun, udp) = (tun.as_raw_fd(), udp.as_raw_fd());
    let mut rx = RecvBatch::new();
    let mut tx = SendBatch::new();
    let mut packet = vec![0u8; batch::DATAGRAM_MAX];
    // Announce ourselves at once, so the gateway learns our UDP address
    // before any traffic needs it.
    session.probe(Instant::now());
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(Ended::Stopped);
        }
        let wait = session
            .poll_timeout()
            .saturating_duration_since(Instant::now())
            .min(MAX_WAIT);
        let ready = batch::poll_readable(&[tun, udp], wait)?;
        let now = Instant::now();
        if ready[1] {
            loop {
                let n = rx.recv(udp)?;
                for i in 0..n {
                    let (data, from, truncated) = rx.get(i);
                    // Only the gateway's address counts; anything else is noise.
                    if truncated || from.ip() != server.ip() {
                        continue;
                    }
                    if let Ok(Some(range)) = session.handle_datagram(now, from, data) {
                        let _ = batch::write_fd(tun, &data[range]);
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
        if ready[0] {
            for _ in 0..BATCH {
                let Some(len) = batch::read_fd(tun, &mut packet)? else {
                    break;
                };
                let slot = tx.slot(udp);
                if session.seal_ip(now, &packet[..len], slot).is_ok() {
                    tx.commit(server);
                }
            }
        }
        if now >= session.poll_timeout() {
            session.handle_timeout(now);
        }
        while let Some(d) = session.poll_transmit() {
            tx.push(udp, &d, server);
        }
        tx.flush(udp);
        while let Some(ev) = session.poll() {
            match ev {
                Event::Closed(r, m) => return Ok(Ended::Closed(r, m)),
                Event::PeerDead => return Ok(Ended::PeerDead),
                Event::Rekeyed(k) => log::debug!("rekeyed (key {k})"),
                Event::PeerMoved(_) => {}
            }
        }
    }
}
