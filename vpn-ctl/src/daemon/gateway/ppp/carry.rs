//! A PPP call that is up, handed to a restarting daemon's successor
//! (docs/decisions.md #52): the link's state, the user and address, the
//! traffic totals, and its fast-path slot (the kernel maps live on, so the
//! successor adopts the slot as it is).
use std::{
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use vpn_proto::ppp::{carry::LinkCarry, link::Link};

use super::{
    super::{limits::TokenBucket, routes::Owner},
    Call, CallState, Carrier, FastPathEntry, PppService, PppState, CONTROL_RATE,
};

#[derive(Serialize, Deserialize)]
pub struct CallCarry {
    pub row_id: u64,
    pub started_at: u64,
    pub user: String,
    pub addr: Ipv4Addr,
    pub encryption: String,
    pub link: LinkCarry,
    /// The call's slot in the kernel's session maps (in-kernel path).
    pub fast_slot: Option<u32>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

fn encryption(name: &str) -> &'static str {
    match name {
        "mppe-128" => "mppe-128",
        "mppe-40" => "mppe-40",
        _ => "none",
    }
}

impl<C: Carrier> Call<C> {
    /// The call's state and its carrier's (under one lock), if its link is
    /// up with a user and an address; else None (it cannot be carried).
    pub fn carry<T>(&self, wire: impl FnOnce(&C::Wire) -> T) -> Option<(CallCarry, T)> {
        let s = self.lock();
        let p = &s.ppp;
        let link = p.link.carry()?;
        let c = CallCarry {
            row_id: self.carrier.row_id(),
            started_at: self.started_at,
            user: p.user.clone()?,
            addr: p.lease.as_ref()?.addr(),
            encryption: p.encryption.into(),
            link,
            fast_slot: p.fast.as_ref().map(|f| f.index()),
            rx_packets: p.rx_packets,
            rx_bytes: p.rx_bytes,
            tx_packets: p.tx_packets,
            tx_bytes: p.tx_bytes,
            drops: p.drops,
        };
        Some((c, wire(&s.wire)))
    }

    /// The call `carry` described, on `carrier`: its address and place
    /// taken again, its vpn0 route and fast-path slot as they were.
    pub fn resume(
        carrier: C,
        wire: C::Wire,
        service: Arc<PppService>,
        c: &CallCarry,
    ) -> anyhow::Result<Arc<Call<C>>> {
        let now = Instant::now();
        let link = Link::resume(service.link.clone(), &c.link, now)?;
        let (admission, lease) =
            service
                .pool
                .restore(c.row_id, &c.user, service.protocol, c.addr)?;
        let fast = match (c.fast_slot, &service.maps) {
            (Some(slot), Some(maps)) => {
                let FastPathEntry { key, entry } = carrier
                    .fast_path(c.addr)
                    .ok_or_else(|| anyhow::anyhow!("the carrier has no fast path"))?;
                Some(maps.adopt(slot, key, entry.assigned_ip)?)
            }
            (Some(_), None) => anyhow::bail!("the fast path is off now"),
            (None, _) => None,
        };
        let call = Arc::new_cyclic(|me| Call {
            carrier,
            _admission: admission,
            started_at: c.started_at,
            state: Mutex::new(CallState {
                ppp: PppState {
                    link,
                    user: Some(c.user.clone()),
                    lease: Some(lease),
                    encryption: encryption(&c.encryption),
                    fast,
                    budget: TokenBucket::new(CONTROL_RATE, now),
                    flood_logged: false,
                    throttled: false,
                    grant: None,
                    rx_packets: c.rx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_packets: c.tx_packets,
                    tx_bytes: c.tx_bytes,
                    drops: c.drops,
                },
                wire,
            }),
            service,
            me: me.clone(),
        });
        {
            let s = call.lock();
            if let Some(lease) = &s.ppp.lease {
                let owner: Arc<dyn Owner> = call.clone();
                lease.route_to(Arc::downgrade(&owner));
            }
        }
        Ok(call)
    }
}
