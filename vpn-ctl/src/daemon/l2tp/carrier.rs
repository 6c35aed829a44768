//! L2TP as a PPP carrier: each call's frames in an L2TP data message to the
//! client's address and port (the one its tunnel came from), with Ns/Nr
//! only when the client sequences its data.
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    sync::{Arc, Mutex},
};

use vpn_proto::l2tp::header::Header;

use vpn_common::maps::{SessionEntry, TunnelKey, PROTO_L2TP, SESSION_F_FAST_PATH};

use super::link::Link;
use crate::{
    daemon::gateway::ppp::{self, Carrier, FastPathEntry},
    dataplane::fastpath::{wire_ip, FastSlot},
};

pub struct Udp {
    pub row_id: u64,
    /// Ours.
    pub tunnel: u16,
    pub session: u16,
    /// The client's, for the headers we send.
    pub peer_tunnel: u16,
    pub peer_session: u16,
    /// The client's outer address when the call started (for `sessions`).
    pub peer: SocketAddrV4,
    pub link: Link,
    /// Our address the client talks to (the outer source of our data), and port.
    pub local: SocketAddrV4,
    /// Calls whose PPP link ended, for the control side to clear (CDN).
    pub ended: Arc<Mutex<Vec<(u16, u16)>>>,
}

/// Data-message sequencing, used once the client sequences its data.
#[derive(Default)]
pub struct DataSeq {
    pub enabled: bool,
    pub ns: u16,
    /// The next Ns we expect from the client.
    pub nr: u16,
}

pub type L2tpCall = ppp::Call<Udp>;

impl Carrier for Udp {
    type Wire = DataSeq;

    fn row_id(&self) -> u64 {
        self.row_id
    }

    fn peer(&self) -> String {
        self.peer.to_string()
    }

    fn peer_ip(&self) -> std::net::IpAddr {
        (*self.peer.ip()).into()
    }

    fn send_frame(&self, w: &mut DataSeq, _fast: Option<&FastSlot>, frame: &[u8]) -> bool {
        let seq = w.enabled.then(|| {
            let ns = w.ns;
            w.ns = ns.wrapping_add(1);
            (ns, w.nr)
        });
        let mut out = Vec::with_capacity(frame.len() + 10);
        Header::encode_data(&mut out, self.peer_tunnel, self.peer_session, seq);
        out.extend_from_slice(frame);
        self.link.send(&out)
    }

    /// The kernel carries unsequenced plain L2TP only (sequencing and
    /// IPsec stay here).
    fn fast_path(&self, addr: Ipv4Addr) -> Option<FastPathEntry> {
        if self.link.is_secure() {
            return None;
        }
        let port = |p: u16| u16::from_ne_bytes(p.to_be_bytes());
        let ids = |t: u16, s: u16| (u32::from(t) << 16) | u32::from(s);
        Some(FastPathEntry {
            key: TunnelKey::new(
                wire_ip(*self.peer.ip()),
                ids(self.tunnel, self.session),
                PROTO_L2TP,
            ),
            entry: SessionEntry {
                flags: SESSION_F_FAST_PATH,
                proto: PROTO_L2TP,
                peer_ip: wire_ip(*self.peer.ip()),
                local_ip: wire_ip(*self.local.ip()),
                peer_port: port(self.peer.port()),
                local_port: port(self.local.port()),
                local_id: ids(self.tunnel, self.session),
                peer_id: ids(self.peer_tunnel, self.peer_session),
                assigned_ip: wire_ip(addr),
                ..Default::default()
            },
        })
    }

    fn wants_fast_path(&self, w: &DataSeq) -> bool {
        !w.enabled && !self.link.is_secure()
    }

    fn link_ended(&self) {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.tunnel, self.session));
    }
}
