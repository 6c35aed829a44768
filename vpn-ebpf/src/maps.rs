//! Every map of the data plane. Names, key and value types come from
//! `vpn_common::maps`, the single definition shared with userspace.
use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, PerCpuArray},
};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{
        DataplaneConfig, FibSlot, FlowTable, ForwardIf, FrameTable, GreSeq, SessionEntry,
        SessionStats, TunnelKey, ADDR_SLOTS, BPF_F_MMAPABLE, FIB_SLOTS, MAX_ADDR_PREFIXES,
        MAX_ESP_SAS, MAX_FORWARD_IFS, MAX_SESSIONS, SESSION_SLOTS,
    },
};

#[map(name = "VPN_STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

#[map(name = "VPN_DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

#[map(name = "VPN_CONFIG")]
pub static CONFIG: Array<DataplaneConfig> = Array::with_max_entries(1, 0);

#[map(name = "VPN_TUNNEL_SESSIONS")]
pub static TUNNEL_SESSIONS: HashMap<TunnelKey, u32> = HashMap::with_max_entries(MAX_SESSIONS, 0);

/// Keys are IPv4 addresses in network order.
#[map(name = "VPN_ADDR_SESSIONS")]
pub static ADDR_SESSIONS: LpmTrie<u32, u32> =
    LpmTrie::with_max_entries(MAX_ADDR_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

#[map(name = "VPN_SESSIONS")]
pub static SESSIONS: Array<SessionEntry> = Array::with_max_entries(MAX_SESSIONS, 0);

#[map(name = "VPN_SESSION_STATS")]
pub static SESSION_STATS: PerCpuArray<SessionStats> =
    PerCpuArray::with_max_entries(MAX_SESSIONS, 0);

/// Shared with the daemon through mmap (see `GreSeq`).
#[map(name = "VPN_GRE_SEQ")]
pub static GRE_SEQ: Array<GreSeq> = Array::with_max_entries(MAX_SESSIONS, BPF_F_MMAPABLE);

/// Inbound ESP SPIs the daemon has SAs for (see `vpn_common::maps::ESP_SPIS`).
#[map(name = "VPN_ESP_SPIS")]
pub static ESP_SPIS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_ESP_SAS, 0);

/// The LAN interfaces XDP forwarding serves (see `vpn_common::maps::FORWARD_IFS`).
#[map(name = "VPN_FORWARD_IF_LIST")]
pub static FORWARD_IFS: Array<ForwardIf> = Array::with_max_entries(MAX_FORWARD_IFS, 0);

/// The forwarding interface `ifindex`, if it is one: the list is packed,
/// so the scan ends at the first empty slot.
#[inline(always)]
pub fn forward_if(ifindex: u32) -> Option<&'static ForwardIf> {
    for i in 0..MAX_FORWARD_IFS {
        let f = FORWARD_IFS.get(i)?;
        if f.ifindex == 0 {
            return None;
        }
        if f.ifindex == ifindex {
            return Some(f);
        }
    }
    None
}

/// Where XDP forwarding redirects to: the forwarding interfaces and the WAN.
#[map(name = "VPN_REDIRECT_DEVS")]
pub static REDIRECT_DEVS: DevMapHash = DevMapHash::with_max_entries(MAX_FORWARD_IFS + 1, 0);

/// XDP forwarding's route cache (see `vpn_common::maps::FIB_CACHE`).
#[map(name = "VPN_FIB_CACHE")]
pub static FIB_CACHE: PerCpuArray<FibSlot> = PerCpuArray::with_max_entries(FIB_SLOTS, 0);

/// The generation of the route and flow caches (0: off).
#[map(name = "VPN_FIB_GEN")]
pub static FIB_GEN: Array<u32> = Array::with_max_entries(1, 0);

/// Session indexes in front of `TUNNEL_SESSIONS` (see
/// `vpn_common::maps::SESSION_CACHE`).
#[map(name = "VPN_SESSION_CACHE")]
pub static SESSION_CACHE: PerCpuArray<u32> = PerCpuArray::with_max_entries(SESSION_SLOTS, 0);

/// Session indexes in front of `ADDR_SESSIONS` (see
/// `vpn_common::maps::ADDR_CACHE`).
#[map(name = "VPN_ADDR_CACHE")]
pub static ADDR_CACHE: PerCpuArray<u32> = PerCpuArray::with_max_entries(ADDR_SLOTS, 0);

/// XDP forwarding's flow cache, WAN to LAN (see `vpn_common::maps::DOWN_FLOWS`).
#[map(name = "VPN_DOWN_FLOWS")]
pub static DOWN_FLOWS: Array<FlowTable> = Array::with_max_entries(1, 0);

/// XDP forwarding's flow cache, LAN to WAN (see `vpn_common::maps::UP_FLOWS`).
#[map(name = "VPN_UP_FLOWS")]
pub static UP_FLOWS: Array<FlowTable> = Array::with_max_entries(1, 0);

/// XDP forwarding's frame cache, WAN to LAN (see `vpn_common::maps::DOWN_FRAMES`).
#[map(name = "VPN_DOWN_FRAMES")]
pub static DOWN_FRAMES: Array<FrameTable> = Array::with_max_entries(1, 0);
