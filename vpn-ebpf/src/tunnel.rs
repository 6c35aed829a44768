//! Which fast-path session a tunnel packet arriving on the WAN belongs
//! to, whatever its protocol: the protocol's header code (`pptp`, `l2tp`)
//! gives the session key and the PPP offset, the session table the rest.
//! Shared by TC ingress and XDP forwarding.
use vpn_common::{
    maps::{DataplaneConfig, SessionEntry, TunnelKey, PROTO_L2TP},
    wire::Ipv4Hdr,
};

use crate::{
    bytes::PacketBytes,
    encap::session,
    l2tp,
    maps::{SESSION_CACHE, TUNNEL_SESSIONS},
    pptp,
};

/// A tunnel data packet's header, before any lookup.
pub struct Header {
    pub key: TunnelKey,
    /// Where the PPP frame starts.
    pub ppp: usize,
    /// L2TP: the sender's UDP port (network order), which must be the
    /// session's (the daemon counts a wrong sender). PPTP: 0.
    pub src_port: u16,
    /// PPTP: the sequence number, when `has_seq`.
    pub seq: u32,
    pub has_seq: bool,
    /// PPTP: an acknowledgement without payload (the daemon ignores it).
    pub ack_only: bool,
}

/// A fast-path session's data packet.
pub struct Arrived {
    pub idx: u32,
    pub entry: SessionEntry,
    /// Where the PPP frame starts.
    pub ppp: usize,
}

/// The header of the tunnel packet whose L4 header is at `l4`, if it is
/// a fast-path protocol's data (`None`: the daemon's, or the stack's).
#[inline(always)]
pub fn header<P: PacketBytes>(
    ctx: &P,
    ip: &Ipv4Hdr,
    l4: usize,
    cfg: &DataplaneConfig,
) -> Option<Header> {
    if let Some(a) = pptp::arrived(ctx, ip, l4, cfg.pptp_enabled != 0) {
        Some(Header {
            key: a.key,
            ppp: a.ppp,
            src_port: 0,
            seq: a.seq,
            has_seq: a.has_seq,
            ack_only: a.ack_only,
        })
    } else {
        l2tp::arrived(ctx, ip, l4, cfg.l2tp_port).map(|a| Header {
            key: a.key,
            ppp: a.ppp,
            src_port: a.src_port,
            seq: 0,
            has_seq: false,
            ack_only: false,
        })
    }
}

/// Whether session `idx` (the session of `h.key`, whose client's port is
/// `peer_port`) takes the packet's payload; a PPTP sequence number is
/// recorded for acknowledgements on the way.
#[inline(always)]
pub fn accepts(h: &Header, idx: u32, peer_port: u16) -> bool {
    if h.has_seq {
        pptp::record_seq(idx, h.seq);
    }
    !h.ack_only && (h.key.proto != PROTO_L2TP || h.src_port == peer_port)
}

/// The fast-path session of the tunnel packet whose header is `h`.
/// `None`: not a fast-path session's data.
#[inline(always)]
pub fn resolve(h: &Header) -> Option<Arrived> {
    let (idx, entry) = lookup(&h.key)?;
    accepts(h, idx, entry.peer_port).then_some(Arrived {
        idx,
        entry,
        ppp: h.ppp,
    })
}

/// The fast-path session of the tunnel packet whose L4 header is at `l4`
/// (`header`, then `resolve`).
#[inline(always)]
pub fn arrived<P: PacketBytes>(
    ctx: &P,
    ip: &Ipv4Hdr,
    l4: usize,
    cfg: &DataplaneConfig,
) -> Option<Arrived> {
    resolve(&header(ctx, ip, l4, cfg)?)
}

/// The fast-path session of `key`: this CPU's cache slot first (a hash
/// map's jhash, bucket walk and key compare were a tenth of XDP
/// forwarding's time), checked against the session table itself, so a
/// slot never outlives its session (the daemon clears an ended session's
/// entry, and a reused index holds another key); else the hash map.
/// Inlined: as a BPF subprogram, its call and the copy of the entry
/// through the caller's stack were a third of XDP forwarding's own time.
#[inline(always)]
fn lookup(key: &TunnelKey) -> Option<(u32, SessionEntry)> {
    let slot = SESSION_CACHE.get_ptr_mut(key.slot());
    if let Some(s) = slot {
        // SAFETY: this CPU's slot; no other program runs on this CPU
        // while this one does.
        let cached = unsafe { *s };
        if cached != 0 {
            let idx = cached - 1;
            if let Some(e) = session(idx) {
                if e.peer_ip == key.peer_ip && e.local_id == key.local_id && e.proto == key.proto {
                    return Some((idx, e));
                }
            }
        }
    }
    // A copy of its own for the map lookup, which takes its address: the
    // caller's header then stays in registers on the paths without it.
    let key = TunnelKey::new(key.peer_ip, key.local_id, key.proto);
    // SAFETY: the value is a plain u32 copied out at once.
    let idx = unsafe { TUNNEL_SESSIONS.get(key) }.copied()?;
    let entry = session(idx)?;
    if let Some(s) = slot {
        // SAFETY: as above.
        unsafe { *s = idx + 1 };
    }
    Some((idx, entry))
}
