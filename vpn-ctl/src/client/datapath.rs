//! The client's data path: one thread polling its TUN device and UDP socket,
//! batching datagrams in and out, and running the session's timers. Returns
//! when the session ends, with why. The TUN device offloads TCP
//! segmentation to us (`vpn_proto::offload`): a read is up to 64 KiB of a
//! flow, cut here, sealed, and sent as one UDP GSO write. The other way,
//! datagrams come coalesced (UDP GRO) and TCP segments go to the TUN
//! device joined into GSO packets.
use std::{
    net::SocketAddr,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use vpn_proto::{
    native::{
        messages::Reason,
        session::{Event, Session},
    },
    offload::{self, Coalescer, VnetHdr, VNET_HDR_LEN},
};

use crate::net::batch::{self, GsoBatch, RecvBatch, SendBatch, BATCH};

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
    let mut rx = RecvBatch::with_gro(batch::enable_gro(udp));
    let mut to_tun = Coalescer::new();
    let mut write_tun = |b: &[u8]| {
        let _ = batch::write_fd(tun, b);
    };
    let mut tx = SendBatch::new();
    let mut data_tx = GsoBatch::new();
    let mut packet = vec![0u8; VNET_HDR_LEN + 65_535];
    let mut segment = Vec::new();
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
                    let size = rx.segment_size(i);
                    let (data, from, truncated) = rx.get(i);
                    // Only the gateway's address counts; anything else is noise.
                    if truncated || from.ip() != server.ip() {
                        continue;
                    }
                    let size = size.min(data.len()).max(1);
                    for d in data.chunks_mut(size) {
                        if let Ok(Some(range)) = session.handle_datagram(now, from, d) {
                            to_tun.push(&d[range], &mut write_tun);
                        }
                    }
                }
                to_tun.flush(&mut write_tun);
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
                let (hdr, ip) = packet[..len].split_at_mut(len.min(VNET_HDR_LEN));
                let Some(hdr) = VnetHdr::decode(hdr) else {
                    continue;
                };
                let cut = offload::split(&hdr, ip, &mut segment, |ip| {
                    data_tx.push_with(udp, server, |out| session.seal_ip(now, ip, out).is_ok());
                });
                if let Err(e) = cut {
                    log::debug!("dropped a packet the TUN device handed over: {e:?}");
                }
            }
            data_tx.flush(udp);
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
