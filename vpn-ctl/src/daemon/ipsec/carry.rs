//! L2TP/IPsec over a restart (docs/decisions.md #52): the ISAKMP SAs that
//! are up and idle (keys, IVs, NAT-T state), every client (its id, the
//! endpoint it moved to, the outbound ESP SA with its sequence number)
//! and every inbound ESP SA (keys, replay window, lifetime, the rekey
//! template, and the outbound half of its pair while that waits for the
//! client, #63). The kernel's SPI map outlives the exec (pinned), so the
//! WAN keeps passing their ESP. A Quick Mode in flight is not carried.
use std::{
    net::SocketAddrV4,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use vpn_proto::{
    esp::{self, SaCarry},
    ike::responder::{carry::IkeCarry, ChildTemplate, IkeSa},
};

use super::{peer::OutboundSa, IkeEntry, InboundSa, Ipsec, Peer};

#[derive(Serialize, Deserialize)]
pub struct PeerCarry {
    /// Its key in the table: the IKE endpoint it first came from.
    pub key: SocketAddrV4,
    pub id: u64,
    pub endpoint: SocketAddrV4,
    pub out: Option<(SaCarry, bool)>,
    pub tx_packets: u64,
}

#[derive(Serialize, Deserialize)]
pub struct InboundCarry {
    pub peer_id: u64,
    pub esp: SaCarry,
    pub udp: bool,
    pub spi_out: u32,
    pub ike: ([u8; 8], [u8; 8]),
    pub expires_in_ms: u64,
    pub rekey_in_ms: u64,
    pub rx_packets: u64,
    pub template: ChildTemplate,
    pub superseded: bool,
    /// Its pair's outbound SA, not yet sent on (the client has not shown
    /// it installed the pair). Absent from a predecessor's older carry.
    #[serde(default)]
    pub pending_out: Option<(SaCarry, bool)>,
}

#[derive(Serialize, Deserialize)]
pub struct IkeEntryCarry {
    pub sa: IkeCarry,
    pub natt_port: bool,
}

#[derive(Serialize, Deserialize, Default)]
pub struct IpsecCarry {
    pub ike: Vec<IkeEntryCarry>,
    pub peers: Vec<PeerCarry>,
    pub inbound: Vec<InboundCarry>,
    pub next_peer_id: u64,
}

/// An outbound SA as carried (with whether it is in UDP), rebuilt.
fn resume_out(c: &Option<(SaCarry, bool)>) -> Option<OutboundSa> {
    let (sa, udp) = c.as_ref()?;
    Some(OutboundSa {
        esp: esp::Outbound::resume(sa)?,
        udp: *udp,
    })
}

fn ms_until(now: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(now).as_millis() as u64
}

impl Ipsec {
    /// Restart, once the workers have stopped.
    pub fn carry(&self) -> IpsecCarry {
        let now = Instant::now();
        let t = self.tables();
        let ike = t
            .ike
            .values()
            .filter_map(|e| {
                Some(IkeEntryCarry {
                    sa: e.sa.carry(now)?,
                    natt_port: e.natt_port,
                })
            })
            .collect();
        let peers = t
            .peers
            .iter()
            .map(|(key, p)| PeerCarry {
                key: *key,
                id: p.id,
                endpoint: p.endpoint_now(),
                out: p
                    .out
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|o| (o.esp.carry(), o.udp)),
                tx_packets: p.tx_packets.load(Ordering::Relaxed),
            })
            .collect();
        let inbound = self
            .inbound_read()
            .iter()
            .map(|(spi, sa)| InboundCarry {
                peer_id: sa.peer.id,
                esp: sa.esp.lock().unwrap_or_else(|e| e.into_inner()).carry(),
                udp: sa.udp,
                spi_out: sa.spi_out,
                ike: sa.ike,
                expires_in_ms: ms_until(now, sa.expires),
                rekey_in_ms: ms_until(now, sa.rekey_at),
                rx_packets: sa.rx_packets.load(Ordering::Relaxed),
                template: sa.template.clone(),
                superseded: sa.superseded.load(Ordering::Relaxed),
                pending_out: t.pending_out.get(spi).map(|o| (o.esp.carry(), o.udp)),
            })
            .collect();
        IpsecCarry {
            ike,
            peers,
            inbound,
            next_peer_id: t.next_peer_id,
        }
    }

    /// The successor: everything `carry` described into the tables.
    /// Returns the number of ESP SAs that could not be rebuilt (their SPIs
    /// leave the kernel's map).
    pub fn restore(&self, c: &IpsecCarry) -> usize {
        let now = Instant::now();
        let mut t = self.tables();
        t.next_peer_id = t.next_peer_id.max(c.next_peer_id);
        for e in &c.ike {
            let key = (e.sa.icookie, e.sa.rcookie);
            t.ike.insert(
                key,
                IkeEntry {
                    sa: IkeSa::resume(self.cfg.clone(), &e.sa, now),
                    natt_port: e.natt_port,
                    half_open: None,
                },
            );
        }
        for p in &c.peers {
            let out = resume_out(&p.out);
            let peer = Arc::new(Peer {
                id: p.id,
                endpoint: Mutex::new(p.endpoint),
                out: Mutex::new(out),
                sockets: self.sockets.clone(),
                counters: self.counters.clone(),
                tx_packets: p.tx_packets.into(),
            });
            t.peers.insert(p.key, peer);
        }
        let mut lost = 0;
        let mut table = self.inbound_write();
        for i in &c.inbound {
            let peer = t.peers.values().find(|p| p.id == i.peer_id).cloned();
            let (Some(peer), Some(esp)) = (peer, esp::Inbound::resume(&i.esp)) else {
                lost += 1;
                self.spis.remove(i.esp.spi);
                continue;
            };
            let at = |ms: u64| now + Duration::from_millis(ms);
            table.insert(
                i.esp.spi,
                Arc::new(InboundSa {
                    peer,
                    esp: Mutex::new(esp),
                    udp: i.udp,
                    spi_out: i.spi_out,
                    ike: i.ike,
                    expires: at(i.expires_in_ms),
                    rx_packets: i.rx_packets.into(),
                    template: i.template.clone(),
                    rekey_at: at(i.rekey_in_ms),
                    superseded: i.superseded.into(),
                }),
            );
            if let Some(out) = resume_out(&i.pending_out) {
                t.pending_out.insert(i.esp.spi, out);
            }
        }
        lost
    }

    /// A carried client by its id (L2TP tunnels name their link by it).
    pub fn peer_by_id(&self, id: u64) -> Option<Arc<Peer>> {
        self.tables().peers.values().find(|p| p.id == id).cloned()
    }
}
