//! vpn0's queue workers, one thread per TUN queue. A packet the kernel
//! routes into vpn0 goes to the session that owns its destination
//! (`Routes`), whatever its protocol; packets for an address without a
//! session are counted (`daemon_no_session`) and dropped. A protocol may
//! give each worker a datagram socket of its own ([`DatagramPort`]): the
//! worker reads it in batches next to its TUN queue (coalesced by UDP GRO
//! where the kernel can), so a flow's packets stay on one core in both
//! directions. vpn0's packets carry a `virtio_net_hdr`: what a batch of
//! datagrams yields is written back coalesced (`WorkerIo::to_tun`); a read
//! whose header cannot be honoured is counted (`daemon_tun_uncut`).
use std::{
    net::{Ipv4Addr, SocketAddr},
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use vpn_proto::offload::{self, Coalescer, VnetHdr, VNET_HDR_LEN};

use super::routes::WorkerIo;
use crate::{
    daemon::Shared,
    net::batch::{self, GsoBatch, RecvBatch, SendBatch, BATCH},
};

/// How often an idle worker looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// A protocol's per-worker datagram sockets and what to do with a datagram.
pub trait DatagramPort: Send + Sync {
    /// Worker `i`'s socket, if there is one for it.
    fn socket(&self, worker: usize) -> Option<RawFd>;
    /// `n` datagrams arrived (for `status`).
    fn received(&self, n: usize);
    /// One datagram from `from`; inner packets go to `tun`, replies to `io`.
    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &self,
        data: &mut [u8],
        from: SocketAddr,
        truncated: bool,
        now: Instant,
        tun: RawFd,
        io: &mut WorkerIo,
    );
}

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
pub fn spawn_workers(
    queues: Vec<OwnedFd>,
    shared: Arc<Shared>,
    port: Option<Arc<dyn DatagramPort>>,
) -> Workers {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = queues
        .into_iter()
        .enumerate()
        .map(|(i, tun)| {
            let (shared, stop, port) = (shared.clone(), stop.clone(), port.clone());
            std::thread::Builder::new()
                .name(format!("vpn-data-{i}"))
                .spawn(move || {
                    if let Err(e) = run(i, &tun, &shared, port.as_deref(), &stop) {
                        log::error!("data path worker {i} stopped: {e}");
                    }
                })
                .expect("spawn data path thread")
        })
        .collect();
    Workers { stop, threads }
}

fn run(
    index: usize,
    tun: &OwnedFd,
    shared: &Shared,
    port: Option<&dyn DatagramPort>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let tun = tun.as_raw_fd();
    let udp = port.and_then(|p| p.socket(index));
    let mut io = WorkerIo {
        tx: SendBatch::new(),
        data_tx: GsoBatch::new(),
        udp,
        to_tun: Coalescer::new(),
    };
    let mut write_tun = |b: &[u8]| {
        // A full TUN queue drops, like any congested interface.
        let _ = batch::write_fd(tun, b);
    };
    // Coalesced reads (UDP GRO): a client's burst comes up in a few reads.
    let mut rx = RecvBatch::with_gro(udp.is_some_and(batch::enable_gro));
    // vpn0 offloads TCP segmentation to us: a read may be 64 KiB of a flow.
    let mut packet = vec![0u8; VNET_HDR_LEN + 65_535];
    let mut segment = Vec::new();
    let fds: Vec<RawFd> = std::iter::once(tun).chain(udp).collect();
    while !stop.load(Ordering::Relaxed) {
        let ready = batch::poll_readable(&fds, IDLE_POLL)?;
        if let (Some(udp), Some(port), Some(true)) = (udp, port, ready.get(1)) {
            loop {
                let n = rx.recv(udp)?;
                let now = Instant::now();
                let mut datagrams = 0;
                for i in 0..n {
                    let size = rx.segment_size(i);
                    let (data, from, truncated) = rx.get(i);
                    if data.is_empty() {
                        // An empty datagram is still one (counted as malformed).
                        port.datagram(data, from, truncated, now, tun, &mut io);
                        datagrams += 1;
                    }
                    for d in data.chunks_mut(size) {
                        port.datagram(d, from, truncated, now, tun, &mut io);
                        datagrams += 1;
                    }
                }
                port.received(datagrams);
                io.to_tun.flush(&mut write_tun);
                io.data_tx.flush(udp);
                io.tx.flush(udp);
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
                let (hdr, ip) = packet[..len].split_at_mut(len.min(VNET_HDR_LEN));
                let cut = VnetHdr::decode(hdr).is_some_and(|hdr| {
                    offload::split(&hdr, ip, &mut segment, |ip| {
                        packet_out(ip, now, &mut io, shared)
                    })
                    .is_ok()
                });
                if !cut {
                    shared.tun_uncut.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(udp) = udp {
                io.data_tx.flush(udp);
                io.tx.flush(udp);
            }
        }
    }
    Ok(())
}

/// A packet the kernel routed into vpn0: to the owner of its destination.
fn packet_out(p: &[u8], now: Instant, io: &mut WorkerIo, shared: &Shared) {
    let dst = (p.len() >= 20 && p[0] >> 4 == 4).then(|| Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let sent = dst
        .and_then(|d| shared.pool.routes().get(d))
        .is_some_and(|owner| owner.send_ip(p, now, io));
    if !sent {
        shared.no_session.fetch_add(1, Ordering::Relaxed);
    }
}
