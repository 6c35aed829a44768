//! The IPsec workers, one per core: each reads one of the NAT-T sockets
//! on UDP 4500 (SO_REUSEPORT: the kernel keeps each client's flow on one
//! worker), worker 0 also UDP 500 and raw ESP. They hand IKE to its SA,
//! open ESP (ICV, replay window, decryption) and pass the L2TP inside to
//! the L2TP service with the SA's client as its link; worker 0 runs the
//! IKE and SA timers every tick.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use vpn_proto::esp::{EspError, NEXT_UDP};

use super::{ike, Ipsec};
use crate::{
    daemon::{
        l2tp::{self, link::Link, L2tp},
        Shared,
    },
    net::batch,
};

const TICK: Duration = Duration::from_millis(100);
const L2TP_PORT: u16 = 1701;

/// What a worker's socket carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ike,
    Natt,
    RawEsp,
}

/// Worker `index` (0: the one with UDP 500, raw ESP and the timers).
pub fn spawn(shared: Arc<Shared>, tun: OwnedFd, index: usize) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("vpn-ipsec-{index}"))
        .spawn(move || {
            if let Err(e) = run(&shared, tun.as_raw_fd(), index) {
                log::error!("ipsec: worker {index} stopped: {e}");
            }
        })
        .expect("spawn IPsec thread")
}

fn run(shared: &Shared, tun: RawFd, index: usize) -> std::io::Result<()> {
    let (Some(ipsec), Some(l2tp)) = (&shared.ipsec, &shared.l2tp) else {
        return Ok(());
    };
    let s = &ipsec.sockets;
    let mut socks = Vec::new();
    if index == 0 {
        socks.push((s.ike.as_raw_fd(), Kind::Ike));
        socks.push((s.natt.as_raw_fd(), Kind::Natt));
        if let Some(raw) = &s.esp {
            socks.push((raw.as_raw_fd(), Kind::RawEsp));
        }
    } else if let Some(natt) = s.natt_workers.get(index - 1) {
        socks.push((natt.as_raw_fd(), Kind::Natt));
    }
    let fds: Vec<RawFd> = socks.iter().map(|(fd, _)| *fd).collect();
    let received = |service: &str| {
        shared
            .base
            .listeners
            .iter()
            .position(|l| l.service == service)
            .and_then(|i| shared.received.get(i))
    };
    let count = |k: Kind| match k {
        Kind::Ike => received("ike"),
        Kind::Natt => received("ike-natt"),
        Kind::RawEsp => None,
    };
    let mut rx = batch::RecvBatch::new();
    let mut last_tick = Instant::now();
    while !shared.stopping.load(Ordering::Relaxed) {
        let ready = batch::poll_readable(&fds, TICK)?;
        for (which, fd) in fds.iter().enumerate() {
            if !ready[which] {
                continue;
            }
            loop {
                let n = rx.recv(*fd)?;
                let kind = socks[which].1;
                if let Some(c) = count(kind) {
                    c.fetch_add(n as u64, Ordering::Relaxed);
                }
                for i in 0..n {
                    let (data, from, truncated) = rx.get(i);
                    let SocketAddr::V4(from) = from else { continue };
                    if truncated {
                        ipsec.counters.ike_malformed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    match kind {
                        Kind::Ike => ike::message(ipsec, l2tp, data, from, false),
                        Kind::Natt => natt_datagram(ipsec, l2tp, data, from, tun),
                        Kind::RawEsp => raw_esp(ipsec, l2tp, data, *from.ip(), tun),
                    }
                }
                if n < batch::BATCH {
                    break;
                }
            }
        }
        let now = Instant::now();
        if index == 0 && now.duration_since(last_tick) >= TICK {
            last_tick = now;
            ike::tick(ipsec, l2tp, now);
        }
    }
    Ok(())
}

/// UDP 4500: a keepalive (0xFF), IKE behind the zero marker, or ESP.
fn natt_datagram(ipsec: &Ipsec, l2tp: &L2tp, data: &mut [u8], from: SocketAddrV4, tun: RawFd) {
    match data {
        [0xff] => {
            ipsec
                .counters
                .natt_keepalives
                .fetch_add(1, Ordering::Relaxed);
        }
        [0, 0, 0, 0, ike_msg @ ..] => ike::message(ipsec, l2tp, ike_msg, from, true),
        _ => esp_in(ipsec, l2tp, data, from, true, tun),
    }
}

/// A raw IPv4 packet of protocol 50 (the socket hands us the IP header).
fn raw_esp(ipsec: &Ipsec, l2tp: &L2tp, data: &mut [u8], from: Ipv4Addr, tun: RawFd) {
    let ihl = data.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    if ihl < 20 || data.len() < ihl {
        ipsec.counters.esp_malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    esp_in(
        ipsec,
        l2tp,
        &mut data[ihl..],
        SocketAddrV4::new(from, 0),
        false,
        tun,
    );
}

fn esp_in(
    ipsec: &Ipsec,
    l2tp: &L2tp,
    packet: &mut [u8],
    from: SocketAddrV4,
    udp: bool,
    tun: RawFd,
) {
    let c = &ipsec.counters;
    if packet.len() < 8 {
        c.esp_malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
    let sa = ipsec.inbound_read().get(&spi).cloned();
    let Some(sa) = sa.filter(|sa| sa.udp == udp) else {
        c.esp_unknown_spi.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let opened = sa
        .esp
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .open(packet);
    let o = match opened {
        Ok(o) => o,
        Err(EspError::Replay) => {
            c.esp_replay.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(EspError::Integrity) => {
            c.esp_integrity.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            c.esp_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if sa.rx_packets.fetch_add(1, Ordering::Relaxed) == 0 {
        // The client sends on the new pair: it has installed it, so the
        // gateway can send on it too (a rekey's outbound half may wait).
        ike::activate(ipsec, &mut ipsec.tables(), spi);
    }
    if udp {
        // Authenticated: a NAT rebinding moves the client here.
        let mut ep = sa.peer.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if *ep != from {
            log::info!("ipsec: client {} moved to {from}", *ep);
            *ep = from;
        }
    }
    let inner = &mut packet[o.start..o.end];
    if o.next != NEXT_UDP
        || inner.len() < 8
        || u16::from_be_bytes([inner[2], inner[3]]) != L2TP_PORT
    {
        c.esp_not_l2tp.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // The inner UDP checksum covers the client's private address (NAT-OA):
    // not checked; ESP's ICV already protects these bytes.
    let port = u16::from_be_bytes([inner[0], inner[1]]);
    let link = Link::Secure {
        sa: sa.peer.clone(),
        port,
    };
    l2tp::deliver(l2tp, &mut inner[8..], link, tun);
}
