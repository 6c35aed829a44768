//! XDP forwarding's flow caches (`vpn_common::maps::DOWN_FLOWS`,
//! `UP_FLOWS`): a flow's whole forwarding decision (session, routes, next
//! hop) made once per CPU and generation, so that its later packets cost
//! one slot instead of a session lookup and two or three route lookups,
//! each a chain of dependent loads.
use aya_ebpf::maps::PerCpuArray;
use vpn_common::maps::{FlowKey, FlowSlot, SessionEntry};

use crate::maps::FIB_GEN;

/// The caches' generation (0: off); read before any lookup whose result
/// is cached, so a result the daemon changed meanwhile is filed under a
/// generation that is already over.
#[inline(always)]
pub fn generation() -> u32 {
    FIB_GEN.get(0).copied().unwrap_or(0)
}

/// The decision cached for `key` under generation `gen`, if any.
#[inline(always)]
pub fn hit(cache: &PerCpuArray<FlowSlot>, key: &FlowKey, gen: u32) -> Option<&'static FlowSlot> {
    if gen == 0 {
        return None;
    }
    let s = cache.get_ptr(key.slot())?;
    // SAFETY: this CPU's slot; no other program runs on this CPU while
    // this one does, and only programs write it.
    let s = unsafe { &*s };
    let [a, b, c, d] = key.words;
    let k = &s.key.words;
    (s.gen == gen && k[0] == a && k[1] == b && k[2] == c && k[3] == d).then_some(s)
}

/// A forwarding decision, as `fill` records it.
pub struct Decision<'a> {
    pub idx: u32,
    pub session: &'a SessionEntry,
    /// The next hop: egress interface, destination then source MAC.
    pub ifindex: u32,
    pub l2: [u32; 3],
    /// LAN to WAN: the ingress interface's MAC.
    pub mac: [u8; 6],
    /// The inner packet's length, which the routes' MTUs passed.
    pub len: u32,
}

/// Records `d` for `key` under generation `gen` (a collision replaces
/// the other flow). Packets up to the largest length passed under this
/// generation hit.
#[inline(always)]
pub fn fill(cache: &PerCpuArray<FlowSlot>, key: &FlowKey, gen: u32, d: &Decision) {
    if gen == 0 {
        return;
    }
    let Some(s) = cache.get_ptr_mut(key.slot()) else {
        return;
    };
    // SAFETY: as in `hit`. Written field by field: a whole-struct copy is
    // a call to a byte-loop memcpy in BPF.
    unsafe {
        let k = &mut (*s).key.words;
        let same = (*s).gen == gen && *k == key.words;
        let fits = if same { (*s).fits.max(d.len) } else { d.len };
        *k = key.words;
        (*s).gen = gen;
        (*s).idx = d.idx;
        (*s).fits = fits;
        (*s).ifindex = d.ifindex;
        (*s).l2 = d.l2;
        (*s).mac = d.mac;
        (*s).session = *d.session;
    }
}
