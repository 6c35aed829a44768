//! The WAN XDP program as fixture tables through BPF_PROG_TEST_RUN: input
//! frame -> expected action, output frame and counter changes. Needs root.
use vpn_common::{
    counters::{Counter, DropReason},
    wire::{GRE_PROTO_PPP, PORT_IKE, PORT_L2TP, PORT_NATT},
};
use vpn_ctl::dataplane::{self, test_run};
use vpn_tests::{
    bpf_fixtures::{self, expect, Counts},
    packet::{arp, ipv6_udp, Frame, L4},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const NATIVE: u16 = bpf_fixtures::NATIVE_PORT;
const WAN_PEER: [u8; 4] = [198, 18, 1, 2];
const GW: [u8; 4] = [198, 18, 0, 1];
const IN_POOL: [u8; 4] = [10, 99, 0, 5];
/// SAs the harness tells the data plane about: ESP in UDP, and raw ESP.
const SPI_UDP: u32 = 0x0000_1234;
const SPI_RAW: u32 = 0x0000_5678;

fn natt(payload: Vec<u8>) -> Vec<u8> {
    Frame {
        l4: L4::Udp {
            sport: 4500,
            dport: PORT_NATT,
            payload,
        },
        ..Frame::udp(WAN_PEER, GW, PORT_NATT)
    }
    .build()
}

fn esp_packet(spi: u32) -> Vec<u8> {
    let mut p = spi.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&[0xab; 40]);
    p
}

fn raw_esp(spi: u32) -> Vec<u8> {
    Frame {
        l4: L4::Raw {
            proto: 50,
            payload: esp_packet(spi),
        },
        ..Frame::udp(WAN_PEER, GW, 0)
    }
    .build()
}

struct Harness {
    ebpf: aya::Ebpf,
}

impl Harness {
    fn new(pptp: bool) -> Harness {
        let mut ebpf = bpf_fixtures::load(pptp);
        dataplane::esp_spis::insert(&mut ebpf, SPI_UDP, true).unwrap();
        dataplane::esp_spis::insert(&mut ebpf, SPI_RAW, false).unwrap();
        Harness { ebpf }
    }

    /// Runs `frame` once; returns the action, output and counter deltas.
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>, Counts) {
        let before = bpf_fixtures::read(&self.ebpf);
        let r = test_run::run_xdp(dataplane::xdp(&self.ebpf).unwrap(), frame, 1).unwrap();
        let delta = bpf_fixtures::delta(&before, bpf_fixtures::read(&self.ebpf));
        (r.action, r.output, delta)
    }
}

struct Fixture {
    name: &'static str,
    frame: Vec<u8>,
    action: u32,
    counters: Counts,
}

fn pass(name: &'static str, frame: Vec<u8>, c: &[Counter]) -> Fixture {
    Fixture {
        name,
        frame,
        action: XDP_PASS,
        counters: expect(c, &[]),
    }
}

fn drop(name: &'static str, frame: Vec<u8>, c: &[Counter], d: DropReason) -> Fixture {
    Fixture {
        name,
        frame,
        action: XDP_DROP,
        counters: expect(c, &[d]),
    }
}

fn fixtures(pptp: bool) -> Vec<Fixture> {
    use Counter::*;
    let mut options = Frame::udp(WAN_PEER, GW, PORT_L2TP);
    options.ihl = 7;
    let mut fragment = Frame::udp(WAN_PEER, GW, PORT_L2TP);
    fragment.frag_offset = 185;
    let mut bad_ihl = Frame::udp(WAN_PEER, GW, 53);
    bad_ihl.ihl = 4;
    let mut padded = Frame::udp(WAN_PEER, GW, 53).build();
    padded.resize(60.max(padded.len()), 0);
    let icmp = Frame {
        l4: L4::Raw {
            proto: 1,
            payload: vec![8, 0, 0, 0, 0, 1, 0, 1],
        },
        ..Frame::udp(WAN_PEER, GW, 0)
    };
    let gre_class = if pptp { XdpClassGre } else { XdpPassIpv4 };
    // IPv4 header fields broken after building (Ethernet header: 14 bytes).
    let mut short_total = Frame::udp(WAN_PEER, GW, 53).build();
    short_total[16..18].copy_from_slice(&12u16.to_be_bytes());
    let mut version6 = Frame::udp(WAN_PEER, GW, 53).build();
    version6[14] = 0x65;
    vec![
        pass(
            "ipv4 udp to another port",
            Frame::udp(WAN_PEER, GW, 53).build(),
            &[XdpRx, XdpPassIpv4],
        ),
        pass("ipv4 icmp", icmp.build(), &[XdpRx, XdpPassIpv4]),
        pass(
            "ethernet padding after the datagram",
            padded,
            &[XdpRx, XdpPassIpv4],
        ),
        pass(
            "l2tp",
            Frame::udp(WAN_PEER, GW, PORT_L2TP).build(),
            &[XdpRx, XdpClassL2tp],
        ),
        pass(
            "native",
            Frame::udp(WAN_PEER, GW, NATIVE).build(),
            &[XdpRx, XdpClassNative],
        ),
        pass(
            "ike",
            Frame::udp(WAN_PEER, GW, PORT_IKE).build(),
            &[XdpRx, XdpClassIke],
        ),
        pass(
            "ike nat-t (non-ESP marker)",
            natt([&[0u8; 4][..], &[0x11; 28]].concat()),
            &[XdpRx, XdpClassIke],
        ),
        pass("nat-t keepalive", natt(vec![0xff]), &[XdpRx, XdpClassIke]),
        pass(
            "esp in udp, an SA's spi",
            natt(esp_packet(SPI_UDP)),
            &[XdpRx, XdpClassEsp],
        ),
        drop(
            "esp in udp, unknown spi",
            natt(esp_packet(0xdead_beef)),
            &[XdpRx],
            DropReason::UnknownSpi,
        ),
        drop(
            "esp in udp for a raw-esp sa",
            natt(esp_packet(SPI_RAW)),
            &[XdpRx],
            DropReason::UnknownSpi,
        ),
        pass(
            "raw esp, an SA's spi",
            raw_esp(SPI_RAW),
            &[XdpRx, XdpClassEsp],
        ),
        drop(
            "raw esp, unknown spi",
            raw_esp(0xdead_beef),
            &[XdpRx],
            DropReason::UnknownSpi,
        ),
        drop(
            "raw esp for a udp sa",
            raw_esp(SPI_UDP),
            &[XdpRx],
            DropReason::UnknownSpi,
        ),
        pass(
            "ipv4 options before udp",
            options.build(),
            &[XdpRx, XdpClassL2tp],
        ),
        pass(
            "non-first fragment",
            fragment.build(),
            &[XdpRx, XdpPassFragment],
        ),
        pass(
            "pptp gre",
            Frame::gre(WAN_PEER, GW, 0x3081, GRE_PROTO_PPP).build(),
            &[XdpRx, gre_class],
        ),
        pass(
            "plain gre v0",
            Frame::gre(WAN_PEER, GW, 0x0000, 0x0800).build(),
            &[XdpRx, XdpPassIpv4],
        ),
        pass(
            "802.1q udp",
            Frame::udp(WAN_PEER, GW, 53).with_vlans(&[100]).build(),
            &[XdpRx, XdpVlan, XdpPassIpv4],
        ),
        pass(
            "802.1ad+802.1q l2tp",
            Frame::udp(WAN_PEER, GW, PORT_L2TP)
                .with_vlans(&[10, 20])
                .build(),
            &[XdpRx, XdpVlan, XdpClassL2tp],
        ),
        pass("ipv6", ipv6_udp(), &[XdpRx, XdpPassIpv6]),
        pass("arp", arp(), &[XdpRx, XdpPassNonIp]),
        drop(
            "pool source on the wan",
            Frame::udp(IN_POOL, GW, 53).build(),
            &[XdpRx],
            DropReason::SpoofedPoolSource,
        ),
        drop(
            "pool source to l2tp",
            Frame::udp(IN_POOL, GW, PORT_L2TP).build(),
            &[XdpRx],
            DropReason::SpoofedPoolSource,
        ),
        drop(
            "pool source in a vlan",
            Frame::udp(IN_POOL, GW, 53).with_vlans(&[7]).build(),
            &[XdpRx, XdpVlan],
            DropReason::SpoofedPoolSource,
        ),
        drop(
            "ihl below 5",
            bad_ihl.build(),
            &[XdpRx],
            DropReason::MalformedIpv4,
        ),
        drop(
            "total length below the header length",
            short_total,
            &[XdpRx],
            DropReason::MalformedIpv4,
        ),
        drop(
            "ethertype ipv4, version 6",
            version6,
            &[XdpRx],
            DropReason::MalformedIpv4,
        ),
        // Deeper than the two tags XDP reads: not parsed as IP, so not
        // classified; no VLAN device three deep exists to take it either.
        pass(
            "three vlan tags around a pool source",
            Frame::udp(IN_POOL, GW, 53).with_vlans(&[1, 2, 3]).build(),
            &[XdpRx, XdpVlan, XdpPassNonIp],
        ),
    ]
}

fn check_table(h: &Harness, table: Vec<Fixture>) {
    for f in table {
        let (action, out, delta) = h.run(&f.frame);
        assert_eq!(action, f.action, "{}: action", f.name);
        if action == XDP_PASS {
            assert_eq!(out, f.frame, "{}: a passed frame must be unchanged", f.name);
        }
        assert_eq!(delta, f.counters, "{}: counters", f.name);
    }
}

#[test]
fn fixture_table_with_pptp_enabled() {
    check_table(&Harness::new(true), fixtures(true));
}

#[test]
fn fixture_table_with_pptp_disabled() {
    check_table(&Harness::new(false), fixtures(false));
}

/// Every truncated prefix of a valid frame is dropped and counted, never
/// aborted. (BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet
/// header, so prefixes start at 14 bytes.)
#[test]
fn every_truncated_prefix_is_dropped_and_counted() {
    let h = Harness::new(true);
    // (name, frame, number of VLAN tags)
    let frames = [
        ("udp", Frame::udp(WAN_PEER, GW, PORT_L2TP).build(), 0),
        (
            "qinq udp",
            Frame::udp(WAN_PEER, GW, 53).with_vlans(&[10, 20]).build(),
            2,
        ),
        (
            "gre",
            Frame::gre(WAN_PEER, GW, 0x3081, GRE_PROTO_PPP).build(),
            0,
        ),
        ("spoofed", Frame::udp(IN_POOL, GW, 53).build(), 0),
        ("esp in udp", natt(esp_packet(SPI_UDP)), 0),
        ("raw esp", raw_esp(SPI_RAW), 0),
    ];
    for (name, frame, tags) in frames {
        for len in 14..frame.len() {
            let (action, _, delta) = h.run(&frame[..len]);
            // The VLAN counter ticks once every tag has been read.
            let vlan = tags > 0 && len >= 14 + 4 * tags;
            let mut want = expect(&[Counter::XdpRx], &[DropReason::Truncated]);
            if vlan {
                *want.entry("xdp_vlan".into()).or_default() += 1;
            }
            assert_eq!(
                (action, &delta),
                (XDP_DROP, &want),
                "{name} cut to {len} bytes"
            );
        }
    }
    // IPv6: the fixed header must be complete; the payload is not ours to check.
    let v6 = ipv6_udp();
    for len in 14..v6.len() {
        let (action, _, delta) = h.run(&v6[..len]);
        if len < 14 + 40 {
            assert_eq!(
                (action, delta),
                (
                    XDP_DROP,
                    expect(&[Counter::XdpRx], &[DropReason::Truncated])
                ),
                "ipv6 cut to {len}"
            );
        } else {
            assert_eq!(
                (action, delta),
                (
                    XDP_PASS,
                    expect(&[Counter::XdpRx, Counter::XdpPassIpv6], &[])
                ),
                "ipv6 cut to {len}"
            );
        }
    }
}

/// Without a valid config slot (before the daemon writes it), nothing is
/// treated as spoofed: a zero mask must never match every source.
#[test]
fn unconfigured_dataplane_passes_pool_sources() {
    let ebpf = dataplane::load(log::LevelFilter::Off).unwrap();
    let frame = Frame::udp(IN_POOL, GW, 53).build();
    let r = test_run::run_xdp(dataplane::xdp(&ebpf).unwrap(), &frame, 1).unwrap();
    assert_eq!(r.action, XDP_PASS);
}
