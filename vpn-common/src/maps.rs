//! The map contract between the data plane and the daemon.
//!
//! The daemon is the only writer of every map except the counters. Map names are
//! the names of the pins under the pin directory (`/sys/fs/bpf/vpn-ctl/` by default).

/// Per-CPU `u64` array indexed by [`crate::counters::Counter`].
pub const STATS: &str = "VPN_STATS";
/// Per-CPU `u64` array indexed by [`crate::counters::DropReason`].
pub const DROPS: &str = "VPN_DROPS";
/// One-slot array holding the [`DataplaneConfig`].
pub const CONFIG: &str = "VPN_CONFIG";
/// Hash: [`TunnelKey`] -> session index.
pub const TUNNEL_SESSIONS: &str = "VPN_TUNNEL_SESSIONS";
/// LPM trie: inner IPv4 prefix (network order) -> session index.
pub const ADDR_SESSIONS: &str = "VPN_ADDR_SESSIONS";
/// Array: session index -> [`SessionEntry`].
pub const SESSIONS: &str = "VPN_SESSIONS";
/// Per-CPU array: session index -> [`SessionStats`].
pub const SESSION_STATS: &str = "VPN_SESSION_STATS";
pub const GRE_SEQ: &str = "VPN_GRE_SEQ";
/// Hash: inbound ESP SPI (host order) -> [`ESP_F_UDP`] or [`ESP_F_RAW`]:
/// which ESP the WAN lets through to the daemon.
pub const ESP_SPIS: &str = "VPN_ESP_SPIS";
/// Array of [`ForwardIf`]: the LAN interfaces XDP forwarding serves,
/// packed from slot 0 (ifindex 0 ends the list) and scanned: with a handful
/// of entries that is cheaper than a hash map's lookup, which was a tenth
/// of LAN-to-WAN forwarding's time. Named apart from the hash map it
/// replaced, so a restart across the change finds no pin of the other kind.
pub const FORWARD_IFS: &str = "VPN_FORWARD_IF_LIST";
/// Device map (hash, keyed by ifindex): where XDP forwarding may redirect
/// to: the forwarding interfaces and the WAN.
pub const REDIRECT_DEVS: &str = "VPN_REDIRECT_DEVS";
/// Per-CPU array of [`FibSlot`]: XDP forwarding's route cache, direct
/// mapped (a key's slot is `FibKey::slot`; a collision is a miss).
pub const FIB_CACHE: &str = "VPN_FIB_CACHE";
/// Per-CPU array of `u32`: a session index + 1 (0: empty) per slot, in
/// front of [`TUNNEL_SESSIONS`]; a slot is `TunnelKey::slot`, and a hit
/// counts only if the session table's entry still has that key.
pub const SESSION_CACHE: &str = "VPN_SESSION_CACHE";
/// Per-CPU array of `u32`: a session index + 1 (0: empty) per slot, in
/// front of [`ADDR_SESSIONS`] for sessions' own addresses; slot
/// `addr_slot(addr)`; a hit counts only if the session table's entry at
/// that index is on the fast path with that address.
pub const ADDR_CACHE: &str = "VPN_ADDR_CACHE";
/// One-slot array: the generation (`u32`) of XDP forwarding's route and
/// flow caches; 0 turns them off. The daemon moves it on at every routing,
/// neighbour, address, link or rule change the kernel announces, and
/// whenever a session joins or leaves the fast path, which invalidates
/// every entry.
pub const FIB_GEN: &str = "VPN_FIB_GEN";
/// Arrays of [`FlowTable`], one table per CPU (indexed by CPU number; the
/// loader sets `max_entries` to the number of possible CPUs): XDP
/// forwarding's flow caches, WAN to LAN and LAN to WAN, direct mapped
/// (slot `FlowKey::slot`). A hit stands for a whole decision (session,
/// routes, next hops) already made for an earlier packet of the flow under
/// the same generation. Only the programs use them: not pinned (a
/// restart's successor keeps the running programs, and their maps, as
/// they are).
pub const DOWN_FLOWS: &str = "VPN_DOWN_FLOWS";
pub const UP_FLOWS: &str = "VPN_UP_FLOWS";
/// Array of [`FrameTable`], one table per CPU (sized as [`DOWN_FLOWS`]):
/// WAN to LAN, a flow's frames as its earlier packets looked (decisions
/// #64), so that a later one is recognised by a masked compare of its
/// first bytes instead of parsing them. Not pinned, as [`DOWN_FLOWS`].
pub const DOWN_FRAMES: &str = "VPN_DOWN_FRAMES";

/// Every map the daemon pins, in the order `status` reports them.
pub const PINNED: [&str; 15] = [
    STATS,
    DROPS,
    CONFIG,
    TUNNEL_SESSIONS,
    ADDR_SESSIONS,
    SESSIONS,
    SESSION_STATS,
    GRE_SEQ,
    ESP_SPIS,
    FORWARD_IFS,
    REDIRECT_DEVS,
    FIB_CACHE,
    FIB_GEN,
    SESSION_CACHE,
    ADDR_CACHE,
];

/// Slots of [`ADDR_CACHE`] per CPU (a power of two).
pub const ADDR_SLOTS: u32 = 4096;

/// An inner address's slot in [`ADDR_CACHE`]: a multiplicative hash.
#[inline(always)]
pub const fn addr_slot(addr: u32) -> u32 {
    addr.wrapping_mul(0x9e37_79b1) >> (32 - ADDR_SLOTS.trailing_zeros())
}

/// Slots of [`SESSION_CACHE`] per CPU (a power of two).
pub const SESSION_SLOTS: u32 = 4096;

/// Slots of [`FIB_CACHE`] per CPU (a power of two).
pub const FIB_SLOTS: u32 = 4096;

/// Slots of [`DOWN_FLOWS`] and of [`UP_FLOWS`] per CPU (a power of two).
pub const FLOW_SLOTS: u32 = 4096;

/// Slots of [`DOWN_FRAMES`] per CPU (a power of two).
pub const FRAME_SLOTS: u32 = 2048;

/// The bytes of a frame a [`FrameSlot`] compares: `FRAME_DWORDS` 8-byte
/// words from `FRAME_AT` on (8-aligned, as a frame's start is), which hold
/// the ethertype, the outer IPv4 header, the tunnel and PPP headers and
/// the inner IPv4 header of every layout the frame cache takes (the inner
/// header ends by byte 74).
pub const FRAME_AT: usize = 8;
pub const FRAME_DWORDS: usize = 9;
/// Where the window ends: frames shorter than this are not matched.
pub const FRAME_END: usize = FRAME_AT + 8 * FRAME_DWORDS;

/// One slot of [`DOWN_FRAMES`]: a frame whose window matches `want` in
/// the bits of its layout's mask (`layout`, an index into the program's
/// masks; the window's words as they lie in memory) is a packet of the
/// flow whose forwarding decision the slot holds, while `gen` is the
/// current generation: session `idx`, egress `ifindex` behind the
/// Ethernet header `eth`, inner packets up to `fits` bytes (the layout
/// says where the inner IPv4 header is).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameSlot {
    pub gen: u32,
    pub idx: u32,
    pub ifindex: u32,
    pub fits: u32,
    pub layout: u32,
    pub _pad: u32,
    pub eth: [u64; 2],
    pub want: [u64; FRAME_DWORDS],
    /// To 128 bytes: a slot's address is a shift.
    pub _align: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<FrameSlot>() == 128);

/// One CPU's frame cache (see [`FlowTable`] for why a table per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FrameTable {
    pub slots: [FrameSlot; FRAME_SLOTS as usize],
}

/// Capacity of [`FORWARD_IFS`] (and, with the WAN, of [`REDIRECT_DEVS`]).
pub const MAX_FORWARD_IFS: u32 = 16;

/// Capacity of the session tables (and so the hard limit on concurrent sessions).
pub const MAX_SESSIONS: u32 = 4096;
/// Capacity of the inner-address trie: each session's /32 plus routed subnets.
pub const MAX_ADDR_PREFIXES: u32 = 2 * MAX_SESSIONS;

/// Inbound ESP SAs at once (each client holds two during a rekey).
pub const MAX_ESP_SAS: u32 = 4 * MAX_SESSIONS;
/// `ESP_SPIS` values: the SA expects ESP in UDP (NAT-T) / as IP protocol 50.
pub const ESP_F_UDP: u32 = 1;
pub const ESP_F_RAW: u32 = 2;

/// `DataplaneConfig::flags`: the config slot has been written by the daemon.
pub const CONFIG_F_VALID: u32 = 1 << 0;
/// `DataplaneConfig::flags`: clients may not reach each other; the fast
/// paths do not turn client-to-client packets around (the stack drops them).
pub const CONFIG_F_CLIENT_ISOLATION: u32 = 1 << 1;
/// `DataplaneConfig::flags`: XDP may forward fast-path packets between the
/// WAN and the [`FORWARD_IFS`] itself. Set and cleared by the daemon as
/// the host's netfilter rules allow (decisions #54).
pub const CONFIG_F_XDP_FORWARD: u32 = 1 << 2;

/// Global settings, written once by the daemon at start-up.
///
/// Addresses and masks are in host byte order (the programs convert the packet's
/// fields); a port of 0 means "protocol not enabled".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub flags: u32,
    pub wan_ifindex: u32,
    pub vpn_ifindex: u32,
    /// Network address of the client pool.
    pub pool_addr: u32,
    /// Netmask of the client pool (never 0: a /0 pool is refused by the config).
    pub pool_mask: u32,
    pub l2tp_port: u16,
    pub native_port: u16,
    pub ike_port: u16,
    pub natt_port: u16,
    /// 1 when PPTP (GRE) is enabled.
    pub pptp_enabled: u32,
}
const _: () = assert!(core::mem::size_of::<DataplaneConfig>() == 32);

impl DataplaneConfig {
    /// True when `addr` (host order) lies inside the pool.
    #[inline(always)]
    pub const fn in_pool(&self, addr: u32) -> bool {
        self.pool_mask != 0 && (addr & self.pool_mask) == self.pool_addr
    }
}

/// Tunnel protocols, as stored in [`TunnelKey::proto`] and [`SessionEntry::proto`].
pub const PROTO_PPTP: u8 = 1;
pub const PROTO_L2TP: u8 = 2;
pub const PROTO_NATIVE: u8 = 3;

/// Identifies a tunnel as seen on the WAN: (protocol, peer address, our id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    /// Peer's outer IPv4 address, network order.
    pub peer_ip: u32,
    /// Our call id (PPTP), tunnel<<16|session (L2TP) or session id (native).
    pub local_id: u32,
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<TunnelKey>() == 12);

impl TunnelKey {
    /// The key of `proto`'s tunnel `local_id` with `peer_ip`, its padding
    /// zeroed. Built as three words: a struct literal zeroes the 3-byte
    /// padding with a call to a byte-loop `memset` in BPF.
    #[inline(always)]
    pub const fn new(peer_ip: u32, local_id: u32, proto: u8) -> TunnelKey {
        let words = [peer_ip, local_id, u32::from_ne_bytes([proto, 0, 0, 0])];
        // SAFETY: same size (asserted below), and TunnelKey is repr(C) of
        // integers only: every bit pattern is a valid value.
        unsafe { core::mem::transmute::<[u32; 3], TunnelKey>(words) }
    }

    /// The key's slot in [`SESSION_CACHE`]: a multiplicative hash.
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        let mix = self.peer_ip ^ self.local_id.rotate_left(11) ^ self.proto as u32;
        mix.wrapping_mul(0x9e37_79b1) >> (32 - SESSION_SLOTS.trailing_zeros())
    }
}

/// `SessionEntry::flags`: tunnel data is forwarded in the kernel.
pub const SESSION_F_FAST_PATH: u32 = 1 << 0;
/// `SessionEntry::flags`: payload is encrypted (MPPE, ESP, AEAD): always userspace.
pub const SESSION_F_ENCRYPTED: u32 = 1 << 1;

/// One session as the data plane needs it. Addresses and ports in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionEntry {
    pub flags: u32,
    pub proto: u8,
    pub _pad: [u8; 3],
    pub peer_ip: u32,
    pub local_ip: u32,
    pub peer_port: u16,
    pub local_port: u16,
    pub local_id: u32,
    pub peer_id: u32,
    /// The inner address assigned to the client (anti-spoofing).
    pub assigned_ip: u32,
}
const _: () = assert!(core::mem::size_of::<SessionEntry>() == 32);

/// Per-session counters (per CPU; userspace sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}
const _: () = assert!(core::mem::size_of::<SessionStats>() == 40);

/// PPTP's GRE sequence space of one fast-path session, shared by the kernel
/// and the daemon: both take `seq_out` with an atomic fetch-add (the map is
/// A LAN interface XDP forwarding serves: its ifindex (0: an empty slot)
/// and MAC (frames to other addresses are not ours to route).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardIf {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<ForwardIf>() == 12);

/// `BPF_F_MMAPABLE`; the daemon maps it), so data the kernel sends and
/// control frames the daemon sends never reuse a number. `seq_in` is the
/// highest sequence number received, acknowledged by both.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreSeq {
    /// The next sequence number to send; only its low 32 bits go on the wire
    /// (64-bit because BPF has 64-bit atomics only).
    pub seq_out: u64,
    pub seq_in: u32,
    /// Non-zero once `seq_in` holds a received number.
    pub have_in: u32,
}
const _: () = assert!(core::mem::size_of::<GreSeq>() == 16);

/// One FIB lookup XDP forwarding makes: addresses in network order, the
/// interface it is made from (or, for `FIB_KIND_OUTPUT`, out of), and
/// which kind of lookup it is (`FIB_KIND_*`) with the packet's ToS shifted
/// left by 8 (a route may select on it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FibKey {
    pub dst: u32,
    pub src: u32,
    pub ifindex: u32,
    pub kind: u32,
}
const _: () = assert!(core::mem::size_of::<FibKey>() == 16);

impl FibKey {
    /// The key's slot in [`FIB_CACHE`]: a multiplicative hash, cheap in
    /// BPF (a hash map's jhash, bucket walk and key compare were a fifth
    /// of the forwarding path's time).
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        let mix = self.dst ^ self.src.rotate_left(16) ^ self.ifindex.rotate_left(8) ^ self.kind;
        mix.wrapping_mul(0x9e37_79b1) >> (32 - FIB_SLOTS.trailing_zeros())
    }
}

/// `FibKey::kind`: a forwarded packet's route (WAN to LAN).
pub const FIB_KIND_FORWARD: u32 = 1;
/// `FibKey::kind`: a LAN packet's route, neighbour not needed (must be vpn0).
pub const FIB_KIND_TO_VPN: u32 = 2;
/// `FibKey::kind`: the tunnel packet's route out of the WAN.
pub const FIB_KIND_OUTPUT: u32 = 3;

/// A cached FIB result: the egress interface and the Ethernet header's
/// first 12 bytes (destination then source MAC, as words), valid while
/// `gen` is the current generation, for packets up to `fits` bytes (the
/// largest one the lookup has passed against the route's MTU), and whether
/// the egress interface is a forwarding interface (`FIB_KIND_FORWARD`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibEntry {
    pub ifindex: u32,
    pub gen: u32,
    pub fits: u32,
    pub forwarding: u32,
    pub l2: [u32; 3],
}
const _: () = assert!(core::mem::size_of::<FibEntry>() == 28);

/// One slot of [`FIB_CACHE`]: the key it holds, and its result.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibSlot {
    pub key: FibKey,
    pub entry: FibEntry,
}
const _: () = assert!(core::mem::size_of::<FibSlot>() == 44);

/// What identifies a flow XDP forwarding decided once: WAN to LAN, the
/// tunnel (peer, our id, protocol) and the inner destination and ToS (the
/// route may select on it); LAN to WAN, the ingress interface and the
/// inner source, destination and ToS. Addresses in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub words: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);

impl FlowKey {
    /// A tunnel packet's flow from the WAN.
    #[inline(always)]
    pub const fn down(tunnel: &TunnelKey, inner_dst: u32, tos: u8) -> FlowKey {
        let tag = tunnel.proto as u32 | (tos as u32) << 8;
        FlowKey {
            words: [tunnel.peer_ip, tunnel.local_id, inner_dst, tag],
        }
    }

    /// A LAN packet's flow towards a client.
    #[inline(always)]
    pub const fn up(ifindex: u32, src: u32, dst: u32, tos: u8) -> FlowKey {
        FlowKey {
            words: [dst, src, tos as u32, ifindex],
        }
    }

    /// The key's slot in a flow cache: a multiplicative hash of its first
    /// three words. Not the fourth: LAN to WAN it is the ingress
    /// interface, three dependent loads away, and the slot's address
    /// would wait for them (it is compared with the slot's key all the
    /// same).
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        let [a, b, c, _] = self.words;
        let mix = a ^ b.rotate_left(16) ^ c.rotate_left(8);
        mix.wrapping_mul(0x9e37_79b1) >> (32 - FLOW_SLOTS.trailing_zeros())
    }
}

/// One slot of a flow cache: the key it holds and the decision, valid
/// while `gen` is the current generation ([`FIB_GEN`]) and for inner
/// packets up to `fits` bytes (the largest one the routes' MTUs passed):
/// session `idx`, egress `ifindex`, and the frame's first bytes as they
/// go out, `hdr` (memory order, little-endian words): WAN to LAN the
/// Ethernet header; LAN to WAN the Ethernet, outer IPv4 and tunnel
/// headers of an empty inner packet, whose lengths and IPv4 checksum
/// (`csum0`) each packet's length then moves on. WAN to LAN also holds
/// what the packet must match (`assigned_ip`, the inner source; `peer_port`,
/// an L2TP sender's port); LAN to WAN, the ingress interface's `mac`
/// (frames to another are not ours to route) and the session's `proto`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSlot {
    pub key: FlowKey,
    pub gen: u32,
    pub idx: u32,
    pub fits: u32,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub peer_port: u16,
    pub assigned_ip: u32,
    pub proto: u8,
    pub _pad: u8,
    pub csum0: u16,
    pub hdr: [u64; FLOW_HDR_WORDS],
}
const _: () = assert!(core::mem::size_of::<FlowSlot>() == 104);

/// Words of `FlowSlot::hdr`: room for Ethernet and PPTP's outer IPv4, GRE
/// and PPP headers (54 bytes).
pub const FLOW_HDR_WORDS: usize = 7;

/// One CPU's flow cache. A table per CPU in a plain array rather than a
/// per-CPU array of slots: the table's address depends on the CPU only,
/// not on the packet, so a slot is found with arithmetic on the hash
/// instead of a lookup (the key through the stack, then the per-CPU
/// pointer) on the packet's critical path.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlowTable {
    pub slots: [FlowSlot; FLOW_SLOTS as usize],
}

/// `BPF_F_MMAPABLE` (linux/bpf.h): the array can be mmap'd by userspace.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_key_new_is_the_literal_with_its_padding_zeroed() {
        let key = TunnelKey::new(0x0a00_0001, 0x1234_5678, PROTO_L2TP);
        let literal = TunnelKey {
            peer_ip: 0x0a00_0001,
            local_id: 0x1234_5678,
            proto: PROTO_L2TP,
            _pad: [0; 3],
        };
        assert_eq!(key, literal);
        assert_ne!(key, TunnelKey::new(0x0a00_0001, 0x1234_5678, PROTO_PPTP));
    }

    #[test]
    fn flow_keys_differ_by_every_part_and_slots_stay_in_range() {
        let t = TunnelKey::new(0x0a00_0001, 0x0001_0002, PROTO_L2TP);
        let down = FlowKey::down(&t, 0xac10_0a02, 0);
        assert_ne!(down, FlowKey::down(&t, 0xac10_0a03, 0));
        assert_ne!(down, FlowKey::down(&t, 0xac10_0a02, 0x10));
        let pptp = TunnelKey::new(0x0a00_0001, 0x0001_0002, PROTO_PPTP);
        assert_ne!(down, FlowKey::down(&pptp, 0xac10_0a02, 0));
        let up = FlowKey::up(3, 0xac10_0a02, 0xc0a8_6402, 0);
        assert_ne!(up, FlowKey::up(4, 0xac10_0a02, 0xc0a8_6402, 0));
        assert_ne!(up, FlowKey::up(3, 0xc0a8_6402, 0xac10_0a02, 0));
        let mut used = [false; FLOW_SLOTS as usize];
        for i in 0..10_000u32 {
            used[FlowKey::up(3, 0xac10_0000 + i, 0xc0a8_6402, 0).slot() as usize] = true;
        }
        // Consecutive addresses spread over most of the slots.
        let n = used.iter().filter(|u| **u).count();
        assert!(n > FLOW_SLOTS as usize * 3 / 4, "{n}");
    }
}
