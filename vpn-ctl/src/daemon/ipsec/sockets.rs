//! The IPsec sockets: IKE on UDP 500, NAT-T on UDP 4500 (IKE behind a
//! four-byte zero non-ESP marker, ESP in UDP, one-byte keepalives), and a
//! raw socket for ESP (IP protocol 50) from clients not behind NAT.
use std::{
    io,
    net::{SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use crate::net::batch;

pub struct Sockets {
    pub ike: OwnedFd,
    pub natt: OwnedFd,
    /// None: raw ESP could not be opened (then only clients behind NAT work).
    pub esp: Option<OwnedFd>,
    /// More NAT-T sockets on the same port (SO_REUSEPORT), one per extra
    /// worker: the kernel spreads clients' flows over them, each client's
    /// ESP stays on one worker (its replay window in order).
    pub natt_workers: Vec<OwnedFd>,
}

/// The non-ESP marker before IKE messages on the NAT-T port (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

impl Sockets {
    /// IKE message to `to`, on 4500 with the marker when `natt`.
    pub fn send_ike(&self, to: SocketAddrV4, msg: &[u8], natt: bool) {
        if natt {
            let mut m = Vec::with_capacity(msg.len() + 4);
            m.extend_from_slice(&NON_ESP_MARKER);
            m.extend_from_slice(msg);
            let _ = batch::send_to(self.natt.as_raw_fd(), &m, SocketAddr::V4(to));
        } else {
            let _ = batch::send_to(self.ike.as_raw_fd(), msg, SocketAddr::V4(to));
        }
    }

    /// An ESP packet, in UDP to `to` or raw to its address.
    /// Whether the kernel took the packet.
    pub fn send_esp(&self, to: SocketAddrV4, packet: &[u8], udp: bool) -> bool {
        if udp {
            batch::send_to(self.natt.as_raw_fd(), packet, SocketAddr::V4(to)).is_ok()
        } else if let Some(raw) = &self.esp {
            let dst = SocketAddrV4::new(*to.ip(), 0);
            batch::send_to(raw.as_raw_fd(), packet, SocketAddr::V4(dst)).is_ok()
        } else {
            false
        }
    }
}

/// A raw IPv4 socket for protocol 50. Received packets include the IP header.
pub fn open_raw_esp() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ESP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    batch::set_buffers(fd.as_raw_fd(), batch::SOCKET_BUFFER);
    Ok(fd)
}
