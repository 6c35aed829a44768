//! The native protocol's datagrams on the vpn0 workers: each worker has its
//! own UDP socket of the native port's SO_REUSEPORT group; datagrams in (a
//! batch per recvmmsg) are decrypted and written to vpn0. The other
//! direction is `NativeSession`'s `Owner::send_ip`.
use std::{
    net::SocketAddr,
    os::fd::{AsRawFd as _, RawFd},
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use vpn_proto::native::{messages::DataHeader, session::Discard};

use crate::{
    daemon::{
        gateway::{routes::WorkerIo, tun::DatagramPort},
        Shared,
    },
    net::batch,
};

/// The native service as the vpn0 workers see it.
pub struct Port(pub Arc<Shared>);

impl DatagramPort for Port {
    fn socket(&self, worker: usize) -> Option<RawFd> {
        self.0.native.udp.get(worker).map(|f| f.as_raw_fd())
    }

    fn received(&self, n: usize) {
        let s = &self.0;
        if let Some(r) = s
            .base
            .listeners
            .iter()
            .position(|l| l.service == "native" && l.proto == "udp")
            .and_then(|i| s.received.get(i))
        {
            r.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A datagram from a client: decrypt, hand the inner packet to the stack.
    fn datagram(
        &self,
        data: &mut [u8],
        from: SocketAddr,
        truncated: bool,
        now: Instant,
        tun: RawFd,
        io: &mut WorkerIo,
    ) {
        let reg = &self.0.native.registry;
        if truncated {
            return reg.count_drop(Discard::Malformed);
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
        match e.handle_datagram(now, from, data) {
            Ok(Some(range)) => io.to_tun.push(&data[range], &mut |b: &[u8]| {
                // A full TUN queue drops, like any congested interface.
                let _ = batch::write_fd(tun, b);
            }),
            Ok(None) => {}
            Err(d) => reg.count_drop(d),
        }
        if let (Some(peer), Some(udp)) = (e.peer(), io.udp) {
            while let Some(d) = e.poll_transmit() {
                io.tx.push(udp, &d, peer);
            }
        }
    }
}
