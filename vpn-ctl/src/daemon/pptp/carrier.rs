//! PPTP as a PPP carrier: each call's frames in enhanced GRE (RFC 2637
//! §4.1) with one sequence space per call, shared with the kernel while
//! the call is on the fast path (docs/decisions.md #27).
use std::{
    net::{Ipv4Addr, SocketAddr},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::Arc,
};

use tokio::sync::Notify;
use vpn_common::maps::{SessionEntry, TunnelKey, PROTO_PPTP, SESSION_F_FAST_PATH};
use vpn_proto::pptp::gre::GreHeader;

use crate::{
    daemon::gateway::ppp::{self, Carrier, FastPathEntry},
    dataplane::fastpath::{wire_ip, FastSlot, SeqPage},
};

pub struct Gre {
    pub row_id: u64,
    /// Ours: the key of GRE packets the client sends us.
    pub call_id: u16,
    /// The client's: the key of GRE packets we send.
    pub peer_call_id: u16,
    pub peer: Ipv4Addr,
    /// Our address the client talks to (the outer source of our GRE).
    pub local: Ipv4Addr,
    /// The client's TCP control address, for `sessions`.
    pub control_peer: SocketAddr,
    pub socket: Arc<OwnedFd>,
    pub seq: Option<Arc<SeqPage>>,
    /// Wakes the call's control connection to clear dead calls (kill, link down).
    pub clear: Arc<Notify>,
}

/// GRE sequencing of one call.
#[derive(Default)]
pub struct GreWire {
    /// Next sequence number we send.
    pub seq_out: u32,
    /// Highest sequence number received, and whether we owe an ack for it.
    pub seq_in: Option<u32>,
    pub ack_owed: bool,
    /// Fast path: the last `seq_in` we acknowledged on our own.
    pub fast_acked: Option<u32>,
}

pub type PptpCall = ppp::Call<Gre>;

impl Gre {
    /// Whether the kernel took the packet.
    fn send(&self, gre: &[u8]) -> bool {
        crate::net::batch::send_to(
            self.socket.as_raw_fd(),
            gre,
            SocketAddr::from((self.peer, 0)),
        )
        .is_ok()
    }

    /// The highest number received: the kernel's while on the fast path.
    fn seq_in(&self, w: &GreWire, fast: Option<&FastSlot>) -> Option<u32> {
        match (fast, &self.seq) {
            (Some(f), Some(page)) => page.seq_in(f.index()),
            _ => w.seq_in,
        }
    }

    /// An ack-only GRE packet (no payload, no sequence number).
    pub fn ack(&self, w: &mut GreWire, fast: Option<&FastSlot>) {
        let h = GreHeader {
            call_id: self.peer_call_id,
            seq: None,
            ack: self.seq_in(w, fast),
            payload_len: 0,
        };
        w.ack_owed = false;
        let mut out = Vec::with_capacity(16);
        h.encode(&mut out);
        let _ = self.send(&out); // a lost ack: the next one carries the same
    }

    pub fn tunnel_key(&self) -> TunnelKey {
        TunnelKey::new(wire_ip(self.peer), u32::from(self.call_id), PROTO_PPTP)
    }
}

impl Carrier for Gre {
    type Wire = GreWire;

    fn row_id(&self) -> u64 {
        self.row_id
    }

    fn peer(&self) -> String {
        self.control_peer.to_string()
    }

    fn peer_ip(&self) -> std::net::IpAddr {
        self.peer.into()
    }

    /// GRE header + PPP frame: the next sequence number, and the
    /// acknowledgement of what we received.
    fn send_frame(&self, w: &mut GreWire, fast: Option<&FastSlot>, frame: &[u8]) -> bool {
        let seq = match (fast, &self.seq) {
            (Some(f), Some(page)) => page.next_seq(f.index()),
            _ => {
                let n = w.seq_out;
                w.seq_out = n.wrapping_add(1);
                n
            }
        };
        let h = GreHeader {
            call_id: self.peer_call_id,
            seq: Some(seq),
            ack: self.seq_in(w, fast),
            payload_len: frame.len() as u16,
        };
        w.ack_owed = false;
        let mut out = Vec::with_capacity(frame.len() + 16);
        h.encode(&mut out);
        out.extend_from_slice(frame);
        self.send(&out)
    }

    fn fast_path(&self, addr: Ipv4Addr) -> Option<FastPathEntry> {
        self.seq.as_ref()?;
        Some(FastPathEntry {
            key: self.tunnel_key(),
            entry: SessionEntry {
                flags: SESSION_F_FAST_PATH,
                proto: PROTO_PPTP,
                peer_ip: wire_ip(self.peer),
                local_ip: wire_ip(self.local),
                local_id: u32::from(self.call_id),
                peer_id: u32::from(self.peer_call_id),
                assigned_ip: wire_ip(addr),
                ..Default::default()
            },
        })
    }

    /// Starts the shared sequence space where our own counters are.
    fn prepare_fast(&self, w: &mut GreWire, slot: u32) {
        if let Some(page) = &self.seq {
            page.init(slot, w.seq_out, w.seq_in);
        }
    }

    /// Numbers on from where the kernel and the daemon left the shared
    /// space: a frame numbered from the call's old counter would be behind
    /// the client's window and discarded (a Terminate-Request, say).
    fn leave_fast(&self, w: &mut GreWire, slot: u32) {
        if let Some(page) = &self.seq {
            w.seq_out = page.peek_seq(slot);
            w.seq_in = page.seq_in(slot).or(w.seq_in);
        }
    }

    fn link_ended(&self) {
        self.clear.notify_one();
    }
}
