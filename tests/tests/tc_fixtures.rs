//! The WAN's TC ingress (the fast paths' decapsulation) as fixture tables
//! through BPF_PROG_TEST_RUN, with L2TP sessions installed the way the
//! daemon installs them: a session's data decapsulated byte-exact, spoofed
//! inner sources dropped and counted, control and DHCP frames left for the
//! daemon, a hairpin re-encapsulated for the other client, and no truncated
//! prefix ever redirected. Needs root.
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{SessionEntry, TunnelKey, PROTO_L2TP, SESSION_F_FAST_PATH},
    wire::PORT_L2TP,
};
use vpn_ctl::dataplane::fastpath::wire_ip;
use vpn_tests::{
    bpf_fixtures::{expect, Counts, TcHarness},
    packet::{inner_udp, ip_in_ppp, Frame, L4},
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
const GW: [u8; 4] = [198, 18, 0, 1];
const LAN: [u8; 4] = [172, 16, 10, 2];

/// One fast-path L2TP client: its outer endpoint, ids and inner address.
struct Client {
    ip: [u8; 4],
    port: u16,
    tunnel: u16,
    session: u16,
    peer_tunnel: u16,
    peer_session: u16,
    inner: [u8; 4],
}

const A: Client = Client {
    ip: [198, 18, 1, 2],
    port: 40000,
    tunnel: 5,
    session: 7,
    peer_tunnel: 50,
    peer_session: 70,
    inner: [10, 99, 0, 5],
};
const B: Client = Client {
    ip: [198, 18, 2, 2],
    port: 41000,
    tunnel: 6,
    session: 8,
    peer_tunnel: 60,
    peer_session: 80,
    inner: [10, 99, 0, 6],
};

/// Both clients installed, PPTP's GRE not classified.
fn harness() -> TcHarness {
    let sessions: Vec<_> = [A, B]
        .iter()
        .map(|c| {
            let local_id = (u32::from(c.tunnel) << 16) | u32::from(c.session);
            let key = TunnelKey::new(wire_ip(c.ip.into()), local_id, PROTO_L2TP);
            let entry = SessionEntry {
                flags: SESSION_F_FAST_PATH,
                proto: PROTO_L2TP,
                _pad: [0; 3],
                peer_ip: wire_ip(c.ip.into()),
                local_ip: wire_ip(GW.into()),
                peer_port: c.port.to_be(),
                local_port: PORT_L2TP.to_be(),
                local_id,
                peer_id: (u32::from(c.peer_tunnel) << 16) | u32::from(c.peer_session),
                assigned_ip: wire_ip(c.inner.into()),
            };
            (key, entry, (0, None))
        })
        .collect();
    TcHarness::new(false, &sessions)
}

/// An L2TP data message from `c` carrying a PPP frame.
fn l2tp(c: &Client, flags: u16, ppp: &[u8]) -> Vec<u8> {
    let mut p = flags.to_be_bytes().to_vec();
    p.extend(c.tunnel.to_be_bytes());
    p.extend(c.session.to_be_bytes());
    p.extend(ppp);
    Frame {
        l4: L4::Udp {
            sport: c.port,
            dport: PORT_L2TP,
            payload: p,
        },
        ..Frame::udp(c.ip, GW, PORT_L2TP)
    }
    .build()
}

#[test]
fn a_sessions_data_is_decapsulated_byte_exact_into_vpn0() {
    let h = harness();
    let ip = inner_udp(A.inner, LAN, 53);
    let (action, out, delta) = h.run(&l2tp(&A, 0x0002, &ip_in_ppp(&ip)));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(
        &out[14..],
        &ip[..],
        "the inner packet after the Ethernet header"
    );
    assert_eq!(delta, expect(&[Counter::FastRx], &[]));
    // Address and control fields compressed away (ACFC), and PFC.
    let (action, out, _) = h.run(&l2tp(&A, 0x0002, &[&[0x21][..], &ip].concat()));
    assert_eq!((action, &out[14..]), (TC_ACT_REDIRECT, &ip[..]));
}

#[test]
fn the_fixture_table() {
    let h = harness();
    let ip = inner_udp(A.inner, LAN, 53);
    let table: Vec<(&str, Vec<u8>, u32, Counts)> = vec![
        (
            "spoofed inner source",
            l2tp(&A, 0x0002, &ip_in_ppp(&inner_udp([10, 99, 0, 9], LAN, 53))),
            TC_ACT_SHOT,
            expect(&[], &[DropReason::SpoofedInnerSource]),
        ),
        (
            "another client's inner address",
            l2tp(&A, 0x0002, &ip_in_ppp(&inner_udp(B.inner, LAN, 53))),
            TC_ACT_SHOT,
            expect(&[], &[DropReason::SpoofedInnerSource]),
        ),
        (
            "lcp echo: the daemon's",
            l2tp(
                &A,
                0x0002,
                &[0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0],
            ),
            TC_ACT_OK,
            expect(&[Counter::FastToDaemon], &[]),
        ),
        (
            "dhcpinform: the daemon answers it",
            l2tp(&A, 0x0002, &ip_in_ppp(&inner_udp(A.inner, [255; 4], 67))),
            TC_ACT_OK,
            expect(&[Counter::FastToDaemon], &[]),
        ),
        (
            "control message (T bit)",
            l2tp(&A, 0xc802, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "sequenced data: the daemon keeps sequencing",
            l2tp(&A, 0x0802, &[&[0, 1, 0, 0][..], &ip_in_ppp(&ip)].concat()),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "unknown session",
            l2tp(&Client { session: 99, ..A }, 0x0002, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "the session's ids from another port",
            l2tp(&Client { port: 40001, ..A }, 0x0002, &ip_in_ppp(&ip)),
            TC_ACT_OK,
            Counts::new(),
        ),
        (
            "not l2tp",
            Frame::udp(A.ip, GW, 53).build(),
            TC_ACT_OK,
            Counts::new(),
        ),
    ];
    for (name, frame, action, want) in table {
        let (got, out, delta) = h.run(&frame);
        assert_eq!(got, action, "{name}");
        assert_eq!(delta, want, "{name}");
        if action != TC_ACT_REDIRECT {
            assert_eq!(out, frame, "{name}: the frame must go on unchanged");
        }
    }
}

#[test]
fn client_to_client_is_turned_around_for_the_other_client() {
    let h = harness();
    let ip = inner_udp(A.inner, B.inner, 5000);
    let (action, out, delta) = h.run(&l2tp(&A, 0x0002, &ip_in_ppp(&ip)));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(delta, expect(&[Counter::FastRx, Counter::FastHairpin], &[]));
    // Ethernet, outer IPv4 to B, UDP from our port to B's, L2TP with B's
    // ids and no L/S/O bits, PPP, then the packet unchanged.
    let outer = &out[14..];
    assert_eq!(outer[0] >> 4, 4);
    assert_eq!(outer[9], 17, "udp");
    assert_eq!(&outer[12..16], &GW);
    assert_eq!(&outer[16..20], &B.ip);
    let udp = &outer[20..];
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), PORT_L2TP);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), B.port);
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let l2tp = &udp[8..];
    assert_eq!(u16::from_be_bytes([l2tp[0], l2tp[1]]), 0x0002);
    assert_eq!(u16::from_be_bytes([l2tp[2], l2tp[3]]), B.peer_tunnel);
    assert_eq!(u16::from_be_bytes([l2tp[4], l2tp[5]]), B.peer_session);
    assert_eq!(&l2tp[6..10], &[0xff, 0x03, 0x00, 0x21]);
    assert_eq!(&l2tp[10..], &ip[..]);
    assert_eq!(
        u16::from_be_bytes([outer[2], outer[3]]) as usize,
        outer.len(),
        "outer total length"
    );
}

#[test]
fn no_truncated_prefix_is_redirected() {
    let h = harness();
    let frame = l2tp(&A, 0x0002, &ip_in_ppp(&inner_udp(A.inner, LAN, 53)));
    // From a whole outer IPv4 header on (the kernel's test run refuses an
    // IPv4 frame shorter than that): cut inside UDP, L2TP, PPP, inner IP.
    for n in 14 + 20..frame.len() {
        let (action, _, delta) = h.run(&frame[..n]);
        assert_ne!(action, TC_ACT_REDIRECT, "prefix {n} was redirected");
        // Left alone, dropped as truncated, or handed to the daemon (which
        // parses the whole frame) — never forwarded.
        assert!(
            delta.is_empty()
                || delta == expect(&[], &[DropReason::Truncated])
                || delta == expect(&[Counter::FastToDaemon], &[]),
            "prefix {n}: {delta:?}"
        );
    }
}
