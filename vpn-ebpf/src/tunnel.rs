//! Which fast-path session a tunnel packet arriving on the WAN belongs
//! to, whatever its protocol: the protocol's header code (`pptp`, `l2tp`)
//! gives the session key and the PPP offset, the session table the rest.
//! Shared by TC ingress and XDP forwarding.
use vpn_common::{
    maps::{DataplaneConfig, SessionEntry, TunnelKey},
    wire::Ipv4Hdr,
};

use crate::{
    bytes::PacketBytes,
    encap::session,
    l2tp,
    maps::{SESSION_CACHE, TUNNEL_SESSIONS},
    pptp,
};

/// A fast-path session's data packet.
pub struct Arrived {
    pub idx: u32,
    pub entry: SessionEntry,
    /// Where the PPP frame starts.
    pub ppp: usize,
}

/// The fast-path session of the tunnel packet whose L4 header is at `l4`.
/// `None`: not a fast-path session's data (the daemon's, or the stack's).
/// A PPTP sequence number is recorded for acknowledgements on the way.
#[inline(always)]
pub fn arrived<P: PacketBytes>(
    ctx: &P,
    ip: &Ipv4Hdr,
    l4: usize,
    cfg: &DataplaneConfig,
) -> Option<Arrived> {
    if let Some(a) = pptp::arrived(ctx, ip, l4, cfg.pptp_enabled != 0) {
        let (idx, entry) = lookup(&a.key)?;
        if a.has_seq {
            pptp::record_seq(idx, a.seq);
        }
        if a.ack_only {
            return None; // the daemon ignores it
        }
        Some(Arrived {
            idx,
            entry,
            ppp: a.ppp,
        })
    } else if let Some(a) = l2tp::arrived(ctx, ip, l4, cfg.l2tp_port) {
        let (idx, entry) = lookup(&a.key)?;
        if a.src_port != entry.peer_port {
            return None; // the daemon counts a wrong sender
        }
        Some(Arrived {
            idx,
            entry,
            ppp: a.ppp,
        })
    } else {
        None
    }
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
    // SAFETY: the value is a plain u32 copied out at once.
    let idx = unsafe { TUNNEL_SESSIONS.get(key) }.copied()?;
    let entry = session(idx)?;
    if let Some(s) = slot {
        // SAFETY: as above.
        unsafe { *s = idx + 1 };
    }
    Some((idx, entry))
}
