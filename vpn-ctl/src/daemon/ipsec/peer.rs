//! One IPsec client (its IKE endpoint): the ESP SAs that carry its L2TP,
//! and the outbound SA in use. Survives Quick Mode and Main Mode rekeys,
//! so the L2TP tunnel bound to it does too.
use std::{
    net::SocketAddrV4,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use vpn_proto::esp::{self, NEXT_UDP};

use super::{sockets::Sockets, IpsecCounters};
use crate::daemon::l2tp::link::SecureLink;

/// Our L2TP port (the client's SA protects UDP to it).
const L2TP_PORT: u16 = 1701;

pub struct OutboundSa {
    pub esp: esp::Outbound,
    pub udp: bool,
}

pub struct Peer {
    pub id: u64,
    /// The client's outer address: its IKE endpoint, moved by NAT
    /// rebinding seen on authenticated ESP.
    pub endpoint: Mutex<SocketAddrV4>,
    pub out: Mutex<Option<OutboundSa>>,
    pub sockets: Arc<Sockets>,
    pub counters: Arc<IpsecCounters>,
    pub tx_packets: AtomicU64,
}

impl Peer {
    pub fn endpoint_now(&self) -> SocketAddrV4 {
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SecureLink for Peer {
    fn id(&self) -> u64 {
        self.id
    }

    /// UDP (1701 → the client's port, checksum 0 as RFC 3948 allows for
    /// transport mode over NAT) in ESP.
    fn send(&self, port: u16, datagram: &[u8]) -> bool {
        let len = (datagram.len() + 8) as u16;
        let mut inner = Vec::with_capacity(datagram.len() + 8);
        inner.extend_from_slice(&L2TP_PORT.to_be_bytes());
        inner.extend_from_slice(&port.to_be_bytes());
        inner.extend_from_slice(&len.to_be_bytes());
        inner.extend_from_slice(&[0, 0]);
        inner.extend_from_slice(datagram);
        let mut packet = Vec::with_capacity(inner.len() + 64);
        let udp = {
            let mut g = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let Some(sa) = g.as_mut() else {
                self.counters.no_outbound_sa.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            if sa.esp.seal(NEXT_UDP, &inner, &mut packet).is_err() {
                self.counters.no_outbound_sa.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            sa.udp
        };
        self.tx_packets.fetch_add(1, Ordering::Relaxed);
        self.sockets.send_esp(self.endpoint_now(), &packet, udp)
    }

    fn endpoint(&self) -> SocketAddrV4 {
        self.endpoint_now()
    }

    fn describe(&self) -> String {
        let g = self.out.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(sa) => format!(
                "esp {}{}",
                sa.esp.transform().name(),
                if sa.udp { " in udp" } else { "" }
            ),
            None => "esp (rekeying)".into(),
        }
    }
}
