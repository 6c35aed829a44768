//! Building test frames: Ethernet (+VLAN tags), IPv4 (+options), UDP, GRE, IPv6.
use std::net::Ipv4Addr;

use vpn_common::wire::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_GRE, IPPROTO_UDP,
};

#[derive(Clone, Debug)]
pub struct Frame {
    pub vlans: Vec<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IHL in 32-bit words (5 = no options).
    pub ihl: u8,
    pub frag_offset: u16,
    pub l4: L4,
}

#[derive(Clone, Debug)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    Gre {
        flags_version: u16,
        proto: u16,
        payload: Vec<u8>,
    },
    Raw {
        proto: u8,
        payload: Vec<u8>,
    },
}

impl Frame {
    pub fn udp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Frame {
        Frame {
            vlans: vec![],
            src: src.into(),
            dst: dst.into(),
            ihl: 5,
            frag_offset: 0,
            l4: L4::Udp {
                sport: 40000,
                dport,
                payload: b"hello vpn".to_vec(),
            },
        }
    }

    pub fn gre(src: [u8; 4], dst: [u8; 4], flags_version: u16, proto: u16) -> Frame {
        Frame {
            l4: L4::Gre {
                flags_version,
                proto,
                payload: vec![0xff, 0x03, 0x00, 0x21, 0x45],
            },
            ..Frame::udp(src, dst, 0)
        }
    }

    pub fn with_vlans(mut self, vlans: &[u16]) -> Frame {
        self.vlans = vlans.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        let proto = match &self.l4 {
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                l4.extend(sport.to_be_bytes());
                l4.extend(dport.to_be_bytes());
                l4.extend(((8 + payload.len()) as u16).to_be_bytes());
                l4.extend([0, 0]);
                l4.extend(payload);
                IPPROTO_UDP
            }
            L4::Gre {
                flags_version,
                proto,
                payload,
            } => {
                l4.extend(flags_version.to_be_bytes());
                l4.extend(proto.to_be_bytes());
                l4.extend(payload);
                IPPROTO_GRE
            }
            L4::Raw { proto, payload } => {
                l4.extend(payload);
                *proto
            }
        };
        let hlen = usize::from(self.ihl) * 4;
        let mut ip = vec![0u8; hlen.max(20)];
        ip[0] = 0x40 | (self.ihl & 0x0f);
        let total = (ip.len() + l4.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6..8].copy_from_slice(&self.frag_offset.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut f = ethernet(&self.vlans, ETH_P_IPV4);
        f.extend(ip);
        f.extend(l4);
        f
    }
}

/// Ethernet header plus VLAN tags (outer 802.1ad when there are two).
pub fn ethernet(vlans: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, tag) in vlans.iter().enumerate() {
        let tpid = if vlans.len() > 1 && i == 0 {
            ETH_P_8021AD
        } else {
            ETH_P_8021Q
        };
        f.extend(tpid.to_be_bytes());
        f.extend(tag.to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f
}

pub fn ipv6_udp() -> Vec<u8> {
    let mut f = ethernet(&[], ETH_P_IPV6);
    let payload = [0x9c, 0x40, 0x06, 0xa5, 0, 12, 0, 0, 1, 2, 3, 4];
    f.extend([0x60, 0, 0, 0]);
    f.extend((payload.len() as u16).to_be_bytes());
    f.extend([IPPROTO_UDP, 64]);
    f.extend(
        [0x20, 0x01, 0x0d, 0xb8]
            .iter()
            .chain([0u8; 11].iter())
            .chain([1u8].iter()),
    );
    f.extend(
        [0x20, 0x01, 0x0d, 0xb8]
            .iter()
            .chain([0u8; 11].iter())
            .chain([2u8].iter()),
    );
    f.extend(payload);
    f
}

pub fn arp() -> Vec<u8> {
    let mut f = ethernet(&[], 0x0806);
    f.extend([0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend([0u8; 20]);
    f
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet without Ethernet: what a tunnel carries.
pub fn inner_udp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    Frame::udp(src, dst, dport).build()[14..].to_vec()
}

/// An ICMP echo request (IPv4, checksums set).
pub fn icmp_echo(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"vpn-ctl echo");
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let len = (20 + icmp.len()) as u16;
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// An IPv4 packet in a PPP frame (address/control, protocol 0x0021).
pub fn ip_in_ppp(ip: &[u8]) -> Vec<u8> {
    [&[0xff, 0x03, 0x00, 0x21][..], ip].concat()
}
