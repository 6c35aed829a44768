//! Counter slots and drop reasons, reported by name by `vpn-ctl status`.
//!
//! Both enums index per-CPU arrays (`maps::STATS`, `maps::DROPS`); userspace sums
//! the per-CPU values. Add new variants at the end, before the `COUNT` constant.

/// Why the data plane dropped a packet. Every drop has exactly one reason.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A header is shorter than its protocol requires or than it declares.
    Truncated = 0,
    /// An IPv4 header with an impossible field (IHL < 5, total length < IHL).
    MalformedIpv4 = 1,
    /// A raw packet on the WAN with a source address inside the VPN pool.
    SpoofedPoolSource = 2,
    /// A fast-path tunnel packet whose inner source is not the session's address.
    SpoofedInnerSource = 3,
    /// A fast-path packet the kernel could not re-encapsulate or redirect.
    FastPathFailed = 4,
    /// ESP (raw or in UDP on the NAT-T port) for an SPI no SA expects.
    UnknownSpi = 5,
}

impl DropReason {
    pub const COUNT: u32 = 6;
    pub const ALL: [DropReason; Self::COUNT as usize] = [
        DropReason::Truncated,
        DropReason::MalformedIpv4,
        DropReason::SpoofedPoolSource,
        DropReason::SpoofedInnerSource,
        DropReason::FastPathFailed,
        DropReason::UnknownSpi,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::MalformedIpv4 => "malformed_ipv4",
            DropReason::SpoofedPoolSource => "spoofed_pool_source",
            DropReason::SpoofedInnerSource => "spoofed_inner_source",
            DropReason::FastPathFailed => "fast_path_failed",
            DropReason::UnknownSpi => "esp_unknown_spi",
        }
    }
}

/// What the data plane saw and how it classified it (not drops).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the WAN XDP program ran on.
    XdpRx = 0,
    /// Frames carrying one or two 802.1Q/802.1ad tags.
    XdpVlan = 1,
    /// Not IPv4/IPv6 (ARP, LLDP, ...): passed untouched.
    XdpPassNonIp = 2,
    /// IPv6: passed untouched (no IPv6 tunnels yet).
    XdpPassIpv6 = 3,
    /// IPv4 that is no tunnel traffic of ours: passed to the stack.
    XdpPassIpv4 = 4,
    /// Non-first IPv4 fragments: no L4 header to classify, passed.
    XdpPassFragment = 5,
    /// PPTP enhanced GRE (version 1, protocol 0x880B).
    XdpClassGre = 6,
    /// UDP to the L2TP port.
    XdpClassL2tp = 7,
    /// UDP to the native-protocol port.
    XdpClassNative = 8,
    /// UDP to the IKE or NAT-T ports.
    XdpClassIke = 9,
    /// Every packet the vpn0 TC egress program ran on.
    TcRx = 10,
    /// Packets to a client without a fast-path session: passed to the daemon.
    TcToDaemon = 11,
    /// Non-IPv4 packets leaving vpn0: passed to the daemon.
    TcPassNonIpv4 = 12,
    /// Fast-path tunnel packets decapsulated on the WAN and sent into vpn0.
    FastRx = 13,
    /// Packets to fast-path clients encapsulated on vpn0 and sent out the WAN.
    FastTx = 14,
    /// Tunnel packets of fast-path sessions that are not IP (PPP control): to the daemon.
    FastToDaemon = 15,
    /// Client-to-client packets between two fast-path sessions, turned around on the WAN.
    FastHairpin = 16,
    /// Packets to fast-path clients left to the daemon because the kernel
    /// has not finished their checksum (CHECKSUM_PARTIAL, from a local veth
    /// or process) or they are GSO bursts PPTP cannot split (decisions #29).
    FastCsumToDaemon = 17,
    /// ESP (raw, or in UDP on the NAT-T port) for an SPI an SA expects.
    XdpClassEsp = 18,
    /// Fast-path tunnel packets decapsulated in XDP on the WAN and
    /// redirected straight to a LAN interface (decisions #54).
    XdpFwdRx = 19,
    /// Packets from a LAN interface encapsulated in XDP for a fast-path
    /// client and redirected straight out of the WAN.
    XdpFwdTx = 20,
    /// Fast-path packets the XDP forwarding path left to the stack (TC):
    /// the route is not a forwarding interface's, the neighbour is not
    /// known yet, a TTL or size the stack must answer, options, ...
    XdpFwdToStack = 21,
}

impl Counter {
    pub const COUNT: u32 = 22;
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::XdpRx,
        Counter::XdpVlan,
        Counter::XdpPassNonIp,
        Counter::XdpPassIpv6,
        Counter::XdpPassIpv4,
        Counter::XdpPassFragment,
        Counter::XdpClassGre,
        Counter::XdpClassL2tp,
        Counter::XdpClassNative,
        Counter::XdpClassIke,
        Counter::TcRx,
        Counter::TcToDaemon,
        Counter::TcPassNonIpv4,
        Counter::FastRx,
        Counter::FastTx,
        Counter::FastToDaemon,
        Counter::FastHairpin,
        Counter::FastCsumToDaemon,
        Counter::XdpClassEsp,
        Counter::XdpFwdRx,
        Counter::XdpFwdTx,
        Counter::XdpFwdToStack,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::XdpRx => "xdp_rx",
            Counter::XdpVlan => "xdp_vlan",
            Counter::XdpPassNonIp => "xdp_pass_non_ip",
            Counter::XdpPassIpv6 => "xdp_pass_ipv6",
            Counter::XdpPassIpv4 => "xdp_pass_ipv4",
            Counter::XdpPassFragment => "xdp_pass_fragment",
            Counter::XdpClassGre => "xdp_class_gre",
            Counter::XdpClassL2tp => "xdp_class_l2tp",
            Counter::XdpClassNative => "xdp_class_native",
            Counter::XdpClassIke => "xdp_class_ike",
            Counter::TcRx => "tc_rx",
            Counter::TcToDaemon => "tc_to_daemon",
            Counter::TcPassNonIpv4 => "tc_pass_non_ipv4",
            Counter::FastRx => "fast_rx",
            Counter::FastTx => "fast_tx",
            Counter::FastToDaemon => "fast_to_daemon",
            Counter::FastHairpin => "fast_hairpin",
            Counter::FastCsumToDaemon => "fast_csum_to_daemon",
            Counter::XdpClassEsp => "xdp_class_esp",
            Counter::XdpFwdRx => "xdp_fwd_rx",
            Counter::XdpFwdTx => "xdp_fwd_tx",
            Counter::XdpFwdToStack => "xdp_fwd_to_stack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_are_complete_and_in_index_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
