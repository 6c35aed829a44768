//! The userspace data path: one thread per TUN queue, each with its own UDP
//! socket of the native port's SO_REUSEPORT group. Datagrams in (a batch per
//! recvmmsg) are decrypted and written to vpn0; packets the kernel routes
//! into vpn0 are looked up by destination, encrypted and sent (a batch per
//! sendmmsg). Packets for an address without a session are counted
//! (`daemon_no_session`) and dropped.
use std::{
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use vpn_proto::native::{messages::DataHeader, session::Discard};

use crate::{
    daemon::Shared,
    net::batch::{self, RecvBatch, SendBatch, BATCH},
};

/// How often an idle worker looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(200);

pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts one worker per TUN queue. Dropping the result stops them.
pub fn spawn_workers(queues: Vec<OwnedFd>, shared: Arc<Shared>) -> Workers {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = queues
        .into_iter()
        .enumerate()
        .map(|(i, tun)| {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("vpn-data-{i}"))
                .spawn(move || {
                    let udp = shared.native.udp.get(i).map(|f| f.as_raw_fd());
                    if let Err(e) = run(&tun, udp, &shared, &stop) {
                        log::error!("data path worker {i} stopped: {e}");
                    }
                })
                .expect("spawn data path thread")
        })
        .collect();
    Workers { stop, threads }
}

fn run(
    tun: &OwnedFd,
    udp: Option<RawFd>,
    shared: &Shared,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let tun = tun.as_raw_fd();
    // This port's `received` counter in `status`.
    let received = shared
        .base
        .listeners
        .iter()
        .position(|l| l.service == "native" && l.proto == "udp")
        .and_then(|i| shared.received.get(i));
    let mut rx = RecvBatch::new();
    let mut tx = SendBatch::new();
    let mut packet = vec![0u8; batch::DATAGRAM_MAX];
    let fds: Vec<RawFd> = std::iter::once(tun).chain(udp).collect();
    while !stop.load(Ordering::Relaxed) {
        let ready = batch::poll_readable(&fds, IDLE_POLL)?;
        if let (Some(udp), Some(true)) = (udp, ready.get(1)) {
            loop {
                let n = rx.recv(udp)?;
                if let Some(r) = received {
                    r.fetch_add(n as u64, Ordering::Relaxed);
                }
                let now = Instant::now();
                for i in 0..n {
                    datagram_in(&mut rx, i, now, tun, udp, &mut tx, shared);
                }
                tx.flush(udp);
                if n < BATCH {
                    break;
                }
            }
        }
        if ready[0] {
            let now = Instant::now();
            for _ in 0..BATCH {
                let Some(len) = batch::read_fd(tun, &mut packet)? else {
                    break;
                };
                packet_out(&packet[..len], now, udp, &mut tx, shared);
            }
            if let Some(udp) = udp {
                tx.flush(udp);
            }
        }
    }
    Ok(())
}

/// A datagram from a client: decrypt, hand the inner packet to the stack.
fn datagram_in(
    rx: &mut RecvBatch,
    i: usize,
    now: Instant,
    tun: RawFd,
    udp: RawFd,
    tx: &mut SendBatch,
    shared: &Shared,
) {
    let reg = &shared.native.registry;
    let (data, from, truncated) = rx.get(i);
    if truncated {
        reg.count_drop(Discard::Malformed);
        return;
    }
    let header = match DataHeader::decode(data) {
        Ok(h) => h,
        Err(vpn_proto::native::messages::WireError::Truncated) => {
            return reg.count_drop(Discard::Truncated)
        }
        Err(_) => return reg.count_drop(Discard::Malformed),
    };
    let Some(session) = reg.by_wire(header.session_id) else {
        return reg.count_drop(Discard::UnknownSession);
    };
    let mut e = session.engine.lock().unwrap_or_else(|e| e.into_inner());
    match e.open(now, from, data) {
        Ok(Some(range)) => {
            // A full TUN queue drops, like any congested interface.
            let _ = batch::write_fd(tun, &data[range]);
        }
        Ok(None) => {}
        Err(d) => reg.count_drop(d),
    }
    if let Some(peer) = e.peer() {
        while let Some(d) = e.poll_transmit() {
            tx.push(udp, &d, peer);
        }
    }
}

/// A packet the kernel routed into vpn0: encrypt it for its session.
fn packet_out(p: &[u8], now: Instant, udp: Option<RawFd>, tx: &mut SendBatch, shared: &Shared) {
    let dst = (p.len() >= 20 && p[0] >> 4 == 4)
        .then(|| std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let session = dst.and_then(|d| shared.native.registry.by_addr(d));
    if session.is_none() {
        if let Some(call) = dst.and_then(|d| shared.pptp.by_addr(d)) {
            if !crate::daemon::pptp::packet_out(shared, &call, p) {
                shared.no_session.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    }
    let (Some(session), Some(udp)) = (session, udp) else {
        shared.no_session.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut e = session.engine.lock().unwrap_or_else(|e| e.into_inner());
    let Some(peer) = e.peer() else {
        // Handshaken, but no datagram from the client yet: nowhere to send.
        shared.no_session.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let slot = tx.slot(udp);
    if e.seal_ip(now, p, slot).is_ok() {
        tx.commit(peer);
    }
}
