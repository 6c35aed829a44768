//! On-the-wire headers the data plane parses. Multi-byte fields are in network
//! byte order exactly as on the wire; convert with `from_be`.

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
/// At most this many VLAN tags are peeled (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ESP: u8 = 50;

/// Well-known ports of the protocols the gateway terminates.
pub const PORT_L2TP: u16 = 1701;
pub const PORT_PPTP: u16 = 1723;
pub const PORT_IKE: u16 = 500;
pub const PORT_NATT: u16 = 4500;
/// DHCP's server port (a client's DHCPINFORM over PPP goes to the daemon).
pub const PORT_DHCP_SERVER: u16 = 67;

/// PPTP's enhanced GRE (RFC 2637 §4.1): version 1, protocol type 0x880B.
pub const GRE_VERSION_MASK: u16 = 0x0007;
pub const GRE_VERSION_PPTP: u16 = 1;
pub const GRE_PROTO_PPP: u16 = 0x880B;
/// Enhanced GRE flag bits (first 16 bits of the header).
pub const GRE_F_KEY: u16 = 0x2000;
pub const GRE_F_SEQ: u16 = 0x1000;
pub const GRE_F_ACK: u16 = 0x0080;

/// L2TPv2 header bits (RFC 2661 §3.1; first 16 bits, version in the low 4).
pub const L2TP_F_TYPE: u16 = 0x8000;
pub const L2TP_F_LENGTH: u16 = 0x4000;
pub const L2TP_F_SEQUENCE: u16 = 0x0800;
pub const L2TP_F_OFFSET: u16 = 0x0200;
pub const L2TP_F_PRIORITY: u16 = 0x0100;
pub const L2TP_VERSION_MASK: u16 = 0x000f;
pub const L2TP_VERSION: u16 = 2;

/// PPP in a tunnel: the address/control field and the IPv4 protocol number.
pub const PPP_ADDR_CTRL: u16 = 0xff03;
pub const PPP_PROTO_IPV4: u16 = 0x0021;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
}
const _: () = assert!(core::mem::size_of::<EthHdr>() == 14);

/// The 4 bytes following a VLAN ethertype.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VlanHdr {
    pub tci: u16,
    pub ethertype: u16,
}
const _: () = assert!(core::mem::size_of::<VlanHdr>() == 4);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub src: u32,
    pub dst: u32,
}
const _: () = assert!(core::mem::size_of::<Ipv4Hdr>() == 20);

/// IPv4 fragment-offset field: the offset bits (flags masked out).
pub const IPV4_FRAG_OFFSET_MASK: u16 = 0x1FFF;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Hdr {
    pub version_tc_flow: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<Ipv6Hdr>() == 40);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpHdr {
    pub src_port: u16,
    pub dst_port: u16,
    pub len: u16,
    pub check: u16,
}
const _: () = assert!(core::mem::size_of::<UdpHdr>() == 8);

/// The fixed part of a GRE header (flags/version and protocol type).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GreHdr {
    pub flags_version: u16,
    pub proto: u16,
}
const _: () = assert!(core::mem::size_of::<GreHdr>() == 4);
