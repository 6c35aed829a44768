//! Where a tunnel's datagrams come from and go to: plain UDP to the
//! client's address and port, or UDP inside an IPsec SA. Tunnels and calls
//! are bound to their link, and inside IPsec the link is the SA's client
//! (never the inner address and port), so several clients behind one NAT
//! each keep their own tunnel.
use std::{
    net::{SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::Arc,
};

/// A protected path to one client (IPsec implements it; L2TP does not
/// know how).
pub trait SecureLink: Send + Sync {
    /// Stable while the client keeps its IKE endpoint (survives rekeys).
    fn id(&self) -> u64;
    /// Sends an L2TP datagram to the client's L2TP port `port`; false if
    /// it could not (no outbound SA, or the socket refused it).
    fn send(&self, port: u16, datagram: &[u8]) -> bool;
    /// The client's outer address, now.
    fn endpoint(&self) -> SocketAddrV4;
    /// e.g. "esp aes128-sha1 in udp", for `sessions`.
    fn describe(&self) -> String;
}

#[derive(Clone)]
pub enum Link {
    Udp {
        peer: SocketAddrV4,
        socket: Arc<OwnedFd>,
    },
    /// `port`: the client's L2TP port inside the SA.
    Secure { sa: Arc<dyn SecureLink>, port: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkId {
    Udp(SocketAddrV4),
    Secure(u64, u16),
}

impl Link {
    pub fn id(&self) -> LinkId {
        match self {
            Link::Udp { peer, .. } => LinkId::Udp(*peer),
            Link::Secure { sa, port } => LinkId::Secure(sa.id(), *port),
        }
    }

    /// Whether the datagram left (the kernel took it).
    pub fn send(&self, datagram: &[u8]) -> bool {
        match self {
            Link::Udp { peer, socket } => {
                crate::net::batch::send_to(socket.as_raw_fd(), datagram, SocketAddr::V4(*peer))
                    .is_ok()
            }
            Link::Secure { sa, port } => sa.send(*port, datagram),
        }
    }

    /// The client's outer address and port.
    pub fn endpoint(&self) -> SocketAddrV4 {
        match self {
            Link::Udp { peer, .. } => *peer,
            Link::Secure { sa, .. } => sa.endpoint(),
        }
    }

    pub fn is_secure(&self) -> bool {
        matches!(self, Link::Secure { .. })
    }
}
