//! XDP forwarding's flow caches (`vpn_common::maps::DOWN_FLOWS`,
//! `UP_FLOWS`): a flow's whole forwarding decision (session, routes, next
//! hop) made once per CPU and generation, so that its later packets cost
//! one slot instead of a session lookup and two or three route lookups,
//! each a chain of dependent loads.
use aya_ebpf::{helpers::bpf_get_smp_processor_id, maps::Array};
use vpn_common::maps::{FlowKey, FlowSlot, FlowTable, FLOW_SLOTS};

use crate::{maps::FIB_GEN, template::Hdr};

/// The caches' generation (0: off); read before any lookup whose result
/// is cached, so a result the daemon changed meanwhile is filed under a
/// generation that is already over.
#[inline(always)]
pub fn generation() -> u32 {
    FIB_GEN.get(0).copied().unwrap_or(0)
}

/// This CPU's table of `cache` (`None`: the map has no table for this
/// CPU, when a loader left `max_entries` at 1: the path without the
/// cache). Looked up before the packet is read: the helper call would
/// otherwise make LLVM keep the packet's fields on the stack across it.
#[inline(always)]
pub fn table(cache: &Array<FlowTable>) -> Option<*mut FlowTable> {
    // SAFETY: a plain helper call (inlined by the verifier on x86-64).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    cache.get_ptr_mut(cpu)
}

/// The decision table `t` holds for `key` under generation `gen`, if any.
#[inline(always)]
pub fn hit(t: *mut FlowTable, key: &FlowKey, gen: u32) -> Option<&'static FlowSlot> {
    if gen == 0 {
        return None;
    }
    // SAFETY: this CPU's slot; no other program runs on this CPU while
    // this one does (programs run with migration off, XDP in softirq
    // context), and only programs write it.
    let s = unsafe { &*slot(t, key) };
    let [a, b, c, d] = key.words;
    let k = &s.key.words;
    (s.gen == gen && k[0] == a && k[1] == b && k[2] == c && k[3] == d).then_some(s)
}

/// `s.mac` as the low 48 bits of a little-endian word (the slot's two
/// bytes after it masked off), to compare with a frame's first 6 bytes.
#[inline(always)]
pub fn mac48(s: &FlowSlot) -> u64 {
    const _: () = assert!(core::mem::offset_of!(FlowSlot, mac) % 8 == 0);
    const _: () =
        assert!(core::mem::offset_of!(FlowSlot, mac) + 8 <= core::mem::size_of::<FlowSlot>());
    // SAFETY: eight bytes of the slot from its 8-aligned MAC on.
    let w = unsafe { core::ptr::addr_of!(s.mac).cast::<u64>().read() };
    w & 0xffff_ffff_ffff
}

/// A forwarding decision, as `fill` records it (see `FlowSlot`).
pub struct Decision {
    pub idx: u32,
    pub ifindex: u32,
    pub hdr: Hdr,
    pub csum0: u16,
    pub mac: [u8; 6],
    pub assigned_ip: u32,
    pub peer_port: u16,
    pub proto: u8,
    /// The inner packet's length, which the routes' MTUs passed.
    pub len: u32,
}

/// Records `d` for `key` under generation `gen` (a collision replaces
/// the other flow). Packets up to the largest length passed under this
/// generation hit.
#[inline(always)]
pub fn fill(t: *mut FlowTable, key: &FlowKey, gen: u32, d: &Decision) {
    if gen == 0 {
        return;
    }
    let s = slot(t, key);
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
        (*s).mac = d.mac;
        (*s).peer_port = d.peer_port;
        (*s).assigned_ip = d.assigned_ip;
        (*s).proto = d.proto;
        (*s).csum0 = d.csum0;
        (*s).hdr = d.hdr;
    }
}

/// `key`'s slot in table `t`.
#[inline(always)]
fn slot(t: *mut FlowTable, key: &FlowKey) -> *mut FlowSlot {
    let i = (key.slot() & (FLOW_SLOTS - 1)) as usize;
    // SAFETY: `i` is below the table's length (masked), inside `*t`.
    unsafe { core::ptr::addr_of_mut!((*t).slots[i]) }
}
