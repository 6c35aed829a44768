//! WAN ingress: parse Ethernet (+ up to two VLAN tags), IPv4, UDP, GRE and
//! ESP; drop pool-sourced spoofs and ESP for SPIs no SA expects; classify
//! tunnel traffic for the daemon.
//!
//! A fast-path session's packet whose route leaves through a forwarding
//! interface is decapsulated and redirected here (`xdp_fwd.rs`). Every
//! other tunnel class goes to the stack (`XDP_PASS`): the fast paths
//! decapsulate in TC ingress (`tc_wan.rs`), which can hand a packet to
//! vpn0's ingress, and the rest reaches the daemon's sockets.
use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use aya_log_ebpf::debug;
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{DataplaneConfig, CONFIG_F_VALID, ESP_F_RAW, ESP_F_UDP},
    wire::{
        EthHdr, GreHdr, Ipv4Hdr, Ipv6Hdr, UdpHdr, VlanHdr, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4,
        ETH_P_IPV6, GRE_PROTO_PPP, GRE_VERSION_MASK, GRE_VERSION_PPTP, IPPROTO_ESP, IPPROTO_GRE,
        IPPROTO_UDP, IPV4_FRAG_OFFSET_MASK, MAX_VLAN_TAGS,
    },
};

use crate::{
    encap::ETH_LEN,
    flow, frame,
    maps::{CONFIG, ESP_SPIS},
    packet::read_at,
    stats::count,
    xdp_fwd,
};

pub fn process(ctx: &XdpContext) -> Result<u32, DropReason> {
    let (start, end) = (ctx.data(), ctx.data_end());
    count(Counter::XdpRx);
    // A frame like an earlier one of a forwarded flow: forwarded the same way.
    if let Some(action) = frame::forward(ctx, flow::generation()) {
        return action;
    }

    let eth: EthHdr = read_at(start, end, 0)?;
    let mut ethertype = u16::from_be(eth.ethertype);
    let mut off = core::mem::size_of::<EthHdr>();
    let mut tagged = false;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let vlan: VlanHdr = read_at(start, end, off)?;
        ethertype = u16::from_be(vlan.ethertype);
        off += core::mem::size_of::<VlanHdr>();
        tagged = true;
    }
    if tagged {
        count(Counter::XdpVlan);
    }

    match ethertype {
        ETH_P_IPV4 => ipv4(ctx, start, end, off),
        ETH_P_IPV6 => {
            read_at::<Ipv6Hdr>(start, end, off)?;
            count(Counter::XdpPassIpv6);
            Ok(xdp_action::XDP_PASS)
        }
        _ => {
            count(Counter::XdpPassNonIp);
            Ok(xdp_action::XDP_PASS)
        }
    }
}

fn ipv4(ctx: &XdpContext, start: usize, end: usize, off: usize) -> Result<u32, DropReason> {
    let ip: Ipv4Hdr = read_at(start, end, off)?;
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    let total_len = usize::from(u16::from_be(ip.total_len));
    if ip.version_ihl >> 4 != 4 || ihl < core::mem::size_of::<Ipv4Hdr>() || total_len < ihl {
        return Err(DropReason::MalformedIpv4);
    }
    // Frames may carry Ethernet padding after the datagram, never less than it declares.
    if start + off + total_len > end {
        return Err(DropReason::Truncated);
    }

    let src = u32::from_be(ip.src);
    let cfg = config();
    if let Some(cfg) = cfg {
        if cfg.in_pool(src) {
            debug!(ctx, "drop: pool source {:i} arrived raw on the WAN", src);
            return Err(DropReason::SpoofedPoolSource);
        }
    }

    if u16::from_be(ip.frag_off) & IPV4_FRAG_OFFSET_MASK != 0 {
        count(Counter::XdpPassFragment);
        return Ok(xdp_action::XDP_PASS);
    }

    let l4 = off + ihl;
    if off == ETH_LEN {
        if let Some(c) = cfg.filter(|c| xdp_fwd::on(c)) {
            if let Some(action) = xdp_fwd::from_wan(ctx, &ip, l4, c)? {
                return Ok(action);
            }
        }
    }
    match ip.proto {
        IPPROTO_UDP => classify_udp(start, end, l4, cfg),
        IPPROTO_GRE => classify_gre(start, end, l4, cfg),
        IPPROTO_ESP => match cfg {
            Some(c) if c.natt_port != 0 => esp(start, end, l4, ESP_F_RAW),
            _ => {
                count(Counter::XdpPassIpv4);
                Ok(xdp_action::XDP_PASS)
            }
        },
        _ => {
            count(Counter::XdpPassIpv4);
            Ok(xdp_action::XDP_PASS)
        }
    }
}

fn classify_udp(
    start: usize,
    end: usize,
    l4: usize,
    cfg: Option<&DataplaneConfig>,
) -> Result<u32, DropReason> {
    let udp: UdpHdr = read_at(start, end, l4)?;
    let dport = u16::from_be(udp.dst_port);
    if let Some(c) = cfg {
        // NAT-T (RFC 3948): a 1-byte keepalive, IKE behind four zero bytes,
        // or ESP whose SPI the daemon has an SA for.
        let payload = usize::from(u16::from_be(udp.len)).saturating_sub(8);
        if dport != 0 && dport == c.natt_port && payload >= 8 {
            let marker: [u8; 4] = read_at(start, end, l4 + 8)?;
            if u32::from_ne_bytes(marker) != 0 {
                return esp(start, end, l4 + 8, ESP_F_UDP);
            }
        }
    }
    let class = match cfg {
        Some(c) if dport != 0 && dport == c.l2tp_port => Counter::XdpClassL2tp,
        Some(c) if dport != 0 && dport == c.native_port => Counter::XdpClassNative,
        Some(c) if dport != 0 && (dport == c.ike_port || dport == c.natt_port) => {
            Counter::XdpClassIke
        }
        _ => Counter::XdpPassIpv4,
    };
    count(class);
    Ok(xdp_action::XDP_PASS)
}

fn classify_gre(
    start: usize,
    end: usize,
    l4: usize,
    cfg: Option<&DataplaneConfig>,
) -> Result<u32, DropReason> {
    let gre: GreHdr = read_at(start, end, l4)?;
    let pptp = u16::from_be(gre.flags_version) & GRE_VERSION_MASK == GRE_VERSION_PPTP
        && u16::from_be(gre.proto) == GRE_PROTO_PPP;
    let class = match cfg {
        Some(c) if pptp && c.pptp_enabled != 0 => Counter::XdpClassGre,
        _ => Counter::XdpPassIpv4,
    };
    count(class);
    Ok(xdp_action::XDP_PASS)
}

/// ESP at `at`: passed (and counted) if an SA expects its SPI this way.
fn esp(start: usize, end: usize, at: usize, how: u32) -> Result<u32, DropReason> {
    let spi: [u8; 4] = read_at(start, end, at)?;
    // SAFETY: a plain lookup; the value is copied out at once.
    let known = unsafe { ESP_SPIS.get(u32::from_be_bytes(spi)) }.copied();
    match known {
        Some(flags) if flags & how != 0 => {
            count(Counter::XdpClassEsp);
            Ok(xdp_action::XDP_PASS)
        }
        _ => Err(DropReason::UnknownSpi),
    }
}

#[inline(always)]
fn config() -> Option<&'static DataplaneConfig> {
    CONFIG.get(0).filter(|c| c.flags & CONFIG_F_VALID != 0)
}
