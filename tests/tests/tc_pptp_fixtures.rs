//! PPTP's enhanced GRE on the WAN's TC ingress through BPF_PROG_TEST_RUN,
//! with two fast-path calls installed the way the daemon installs them: a
//! call's data decapsulated byte-exact and its sequence number recorded,
//! the GRE pushed for the other call byte-exact (outer IPv4, key, sequence
//! taken from the shared space, acknowledgement of what that call sent),
//! everything else left for the daemon or dropped and counted, and no
//! truncated prefix ever redirected. Needs root.
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{SessionEntry, TunnelKey, PROTO_PPTP, SESSION_F_FAST_PATH},
    wire::{GRE_F_ACK, GRE_F_KEY, GRE_F_SEQ, GRE_PROTO_PPP, GRE_VERSION_PPTP},
};
use vpn_ctl::dataplane::fastpath::wire_ip;
use vpn_tests::{
    bpf_fixtures::{expect, Counts, TcHarness},
    packet::{checksum, inner_udp, ip_in_ppp, Frame, L4},
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
const GW: [u8; 4] = [198, 18, 0, 1];
const LAN: [u8; 4] = [172, 16, 10, 2];
const KSA: u16 = GRE_F_KEY | GRE_F_SEQ | GRE_F_ACK | GRE_VERSION_PPTP;
const KS: u16 = GRE_F_KEY | GRE_F_SEQ | GRE_VERSION_PPTP;

/// One fast-path PPTP call: the client's address, our call ID (the key of
/// what it sends), its call ID (the key of what we send), inner address,
/// and where its GRE sequence space starts.
struct Call {
    ip: [u8; 4],
    ours: u16,
    theirs: u16,
    inner: [u8; 4],
    seq_out: u32,
    seq_in: Option<u32>,
}

const C: Call = Call {
    ip: [198, 18, 3, 2],
    ours: 0x1111,
    theirs: 0x2222,
    inner: [10, 99, 0, 7],
    seq_out: 100,
    seq_in: Some(50),
};
const D: Call = Call {
    ip: [198, 18, 4, 2],
    ours: 0x3333,
    theirs: 0x4444,
    inner: [10, 99, 0, 8],
    seq_out: 7,
    seq_in: Some(3),
};

fn harness(pptp_enabled: bool) -> TcHarness {
    let sessions: Vec<_> = [C, D]
        .iter()
        .map(|c| {
            let key = TunnelKey::new(wire_ip(c.ip.into()), u32::from(c.ours), PROTO_PPTP);
            let entry = SessionEntry {
                flags: SESSION_F_FAST_PATH,
                proto: PROTO_PPTP,
                _pad: [0; 3],
                peer_ip: wire_ip(c.ip.into()),
                local_ip: wire_ip(GW.into()),
                peer_port: 0,
                local_port: 0,
                local_id: u32::from(c.ours),
                peer_id: u32::from(c.theirs),
                assigned_ip: wire_ip(c.inner.into()),
            };
            (key, entry, (c.seq_out, c.seq_in))
        })
        .collect();
    TcHarness::new(pptp_enabled, &sessions)
}

/// PPTP GRE from `c` (`flags`: which of sequence and ack it carries).
fn gre(c: &Call, flags: u16, seq: u32, ack: u32, ppp: &[u8]) -> Vec<u8> {
    let mut p = (ppp.len() as u16).to_be_bytes().to_vec();
    p.extend(c.ours.to_be_bytes());
    if flags & GRE_F_SEQ != 0 {
        p.extend(seq.to_be_bytes());
    }
    if flags & GRE_F_ACK != 0 {
        p.extend(ack.to_be_bytes());
    }
    p.extend(ppp);
    Frame {
        l4: L4::Gre {
            flags_version: flags,
            proto: GRE_PROTO_PPP,
            payload: p,
        },
        ..Frame::udp(c.ip, GW, 0)
    }
    .build()
}

/// What the kernel must send `to` for `ip`: outer IPv4 (DF, TTL 64, ID 0,
/// its checksum), GRE with key, sequence and ack, PPP, the packet.
fn pushed(to: &Call, seq: u32, ack: u32, ip: &[u8]) -> Vec<u8> {
    let mut o = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
    o.extend(GW);
    o.extend(to.ip);
    let total = (20 + 16 + 4 + ip.len()) as u16;
    o[2..4].copy_from_slice(&total.to_be_bytes());
    let sum = checksum(&o);
    o[10..12].copy_from_slice(&sum.to_be_bytes());
    o.extend(KSA.to_be_bytes());
    o.extend(GRE_PROTO_PPP.to_be_bytes());
    o.extend(((ip.len() + 4) as u16).to_be_bytes());
    o.extend(to.theirs.to_be_bytes());
    o.extend(seq.to_be_bytes());
    o.extend(ack.to_be_bytes());
    o.extend(ip_in_ppp(ip));
    o
}

#[test]
fn a_calls_data_is_decapsulated_byte_exact_and_its_sequence_recorded() {
    let h = harness(true);
    let ip = inner_udp(C.inner, LAN, 53);
    let (action, out, delta) = h.run(&gre(&C, KSA, 51, 99, &ip_in_ppp(&ip)));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[14..], &ip[..], "the inner packet after Ethernet");
    assert_eq!(delta, expect(&[Counter::FastRx], &[]));
    assert_eq!(h.seq_in(0), Some(51));
    // Without an ack, and with address/control compressed away (ACFC).
    let (action, out, _) = h.run(&gre(&C, KS, 52, 0, &[&[0x00, 0x21][..], &ip].concat()));
    assert_eq!((action, &out[14..]), (TC_ACT_REDIRECT, &ip[..]));
    assert_eq!(h.seq_in(0), Some(52));
    // A late packet is still delivered (PPP tolerates reordering) but does
    // not move the acknowledgement back.
    let (action, _, _) = h.run(&gre(&C, KSA, 40, 99, &ip_in_ppp(&ip)));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(h.seq_in(0), Some(52));
    let s = h.stats(0);
    assert_eq!((s.rx_packets, s.rx_bytes), (3, 3 * ip.len() as u64));
    assert_eq!(h.stats(1).rx_packets, 0, "the other call untouched");
}

#[test]
fn the_other_calls_gre_is_pushed_byte_exact_with_sequence_and_ack() {
    let h = harness(true);
    // D's latest packet sets the ack C's packets to D will carry.
    let from_d = inner_udp(D.inner, LAN, 53);
    let (action, _, _) = h.run(&gre(&D, KSA, 9, 0, &ip_in_ppp(&from_d)));
    assert_eq!(action, TC_ACT_REDIRECT);
    let ip = inner_udp(C.inner, D.inner, 5000);
    for n in 0..3 {
        let (action, out, delta) = h.run(&gre(&C, KSA, 60 + n, 0, &ip_in_ppp(&ip)));
        assert_eq!(action, TC_ACT_REDIRECT, "packet {n}");
        assert_eq!(
            delta,
            expect(&[Counter::FastRx, Counter::FastHairpin], &[]),
            "packet {n}"
        );
        assert_eq!(
            &out[14..],
            &pushed(&D, D.seq_out + n, 9, &ip)[..],
            "packet {n}: numbered from D's shared space, acking D's 9"
        );
    }
    let s = h.stats(1);
    assert_eq!((s.tx_packets, s.tx_bytes), (3, 3 * ip.len() as u64));
    assert_eq!(h.stats(0).rx_packets, 3);
}

#[test]
fn the_fixture_table() {
    let h = harness(true);
    let ip = inner_udp(C.inner, LAN, 53);
    let table: Vec<(&str, Vec<u8>, u32, Counts)> = vec![
        (
            "spoofed inner source",
            gre(
                &C,
                KSA,
                51,
                0,
                &ip_in_ppp(&inner_udp([10, 99, 0, 9], LAN, 53)),
            ),
            TC_ACT_SHOT,
            expect(&[], &[DropReason::SpoofedInnerSource]),
        ),
        (
            "the other call's inner address",
            gre(&C, KSA, 52, 0, &ip_in_ppp(&inner_udp(D.inner, LAN, 53))),
            TC_ACT_SHOT,
            expect(&[], &[DropReason::SpoofedInnerSource]),
        ),
        (
            "lcp echo: the daemon's",
            gre(
                &C,
                KSA,
                53,
                0,
                &[0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0],
            ),
            TC_ACT_OK,
            expect(&[Counter::FastToDaemon], &[]),
        ),
        (
            "mppe (ccp protocol 0x00fd): the daemon decrypts it",
            gre(
                &C,
                KSA,
                54,
                0,
                &[0xff, 0x03, 0x00, 0xfd, 0x90, 0x01, 1, 2, 3],
            ),
            TC_ACT_OK,
            expect(&[Counter::FastToDaemon], &[]),
        ),
        (
            "dhcpinform: the daemon answers it",
            gre(
                &C,
                KSA,
                55,
                0,
                &ip_in_ppp(&inner_udp(C.inner, [255; 4], 67)),
            ),
            TC_ACT_OK,
            expect(&[Counter::FastToDaemon], &[]),
        ),
        (
            "ack only (no payload)",
            gre(&C, GRE_F_KEY | GRE_F_ACK | GRE_VERSION_PPTP, 0, 7, &[]),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "unknown call ID",
            gre(&Call { ours: 0x9999, ..C }, KSA, 56, 0, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "the call's ID from another address",
            gre(
                &Call {
                    ip: [198, 18, 9, 9],
                    ..C
                },
                KSA,
                57,
                0,
                &ip_in_ppp(&ip),
            ),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "GRE version 0",
            gre(&C, GRE_F_KEY | GRE_F_SEQ, 58, 0, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "no key",
            gre(&C, GRE_F_SEQ | GRE_VERSION_PPTP, 59, 0, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
    ];
    for (name, frame, action, want) in table {
        let (got, out, delta) = h.run(&frame);
        assert_eq!(got, action, "{name}");
        assert_eq!(delta, want, "{name}");
        assert_eq!(out, frame, "{name}: the frame must go on unchanged");
    }
}

#[test]
fn gre_is_left_alone_when_pptp_is_off() {
    let h = harness(false);
    let frame = gre(&C, KSA, 51, 0, &ip_in_ppp(&inner_udp(C.inner, LAN, 53)));
    let (action, out, delta) = h.run(&frame);
    assert_eq!((action, out, delta), (TC_ACT_OK, frame, Counts::new()));
    assert_eq!(h.seq_in(0), C.seq_in, "nothing recorded");
}

#[test]
fn no_truncated_prefix_is_redirected() {
    let h = harness(true);
    let frame = gre(&C, KSA, 51, 0, &ip_in_ppp(&inner_udp(C.inner, LAN, 53)));
    for n in 14 + 20..frame.len() {
        let (action, _, delta) = h.run(&frame[..n]);
        assert_ne!(action, TC_ACT_REDIRECT, "prefix {n} was redirected");
        assert!(
            delta.is_empty()
                || delta == expect(&[], &[DropReason::Truncated])
                || delta == expect(&[Counter::FastToDaemon], &[]),
            "prefix {n}: {delta:?}"
        );
    }
}
