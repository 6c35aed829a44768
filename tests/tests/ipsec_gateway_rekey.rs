//! The gateway's own Quick Mode (it rekeys an ESP SA the client lets
//! expire, docs/decisions.md #51) and when it starts sending on the new
//! pair (#63): only once the client has installed it. Driven by the
//! project's own L2TP/IPsec client, which can hold back from installing
//! the pair after QM3 and see which SA each of the gateway's packets
//! came on; and across a `vpn-ctl restart` while the new pair waits.
//! Needs root.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vpn_proto::ike::responder::ACTIVATE_AFTER;
use vpn_tests::{
    gateway::Gateway,
    ipsec_peer::{IpsecCall, NewPair},
    native_client::add_user,
    netns::{enter_thread, in_ns},
    packet::icmp_echo,
    topology::{Topology, GW_WAN, LAN_HOST},
};

/// The client's ESP SA lifetime: the gateway starts its Quick Mode half of
/// it (10 s) before the end, the client never does.
const LIFETIME: u16 = 20;

/// One echo request to the LAN host through `call`; whether its reply
/// came back.
fn ping(call: &mut IpsecCall, seq: u16) -> bool {
    let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
    let me = call.l2tp.ppp.address().unwrap();
    let echo = icmp_echo(me.octets(), lan.octets(), 7, seq);
    let replies = call.l2tp.exchange(&echo, Duration::from_secs(2)).unwrap();
    replies
        .iter()
        .any(|ip| ip[9] == 1 && ip[20] == 0 && ip[12..16] == lan.octets())
}

/// An L2TP/IPsec call of `user` (password `USER-password-1`) proposing
/// an ESP lifetime of LIFETIME.
fn connect(psk: &str, user: &str, id: u16) -> IpsecCall {
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    let password = format!("{user}-password-1");
    IpsecCall::connect_with(gw_wan, psk, user, &password, id, Some(LIFETIME)).unwrap()
}

/// The gateway's Quick Mode, answered with our SPI `spi` (the pair not
/// installed), and when its QM3 came.
fn answer_rekey(call: &mut IpsecCall, spi: u32) -> (NewPair, Instant) {
    let within = Duration::from_secs(2 * u64::from(LIFETIME));
    let pair = call.answer_gateway_quick_mode(spi, within).unwrap();
    (pair, Instant::now())
}

#[test]
fn the_gateway_sends_on_its_new_esp_sa_only_once_the_client_has_it() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, "erin", "erin-password-1", None);
    let psk = gw.ipsec_psk();
    let (old, new, before, pending, after) = in_ns(&t.c1.name, move || {
        let mut call = connect(&psk, "erin", 51);
        let old = call.spi_in();
        assert!(ping(&mut call, 1), "no reply before the rekey");
        let before = call.last_spi_in();
        let (pair, qm3) = answer_rekey(&mut call, 0x5eed_0051);
        // QM3 is in, but this client has not installed the pair: the
        // gateway must go on sending on the old SA.
        assert!(ping(&mut call, 2), "no reply while the new pair waits");
        let pending = call.last_spi_in();
        assert!(
            qm3.elapsed() < ACTIVATE_AFTER,
            "the reply took longer than the gateway's wait for the client ({:?}): \
             the check above proves nothing",
            qm3.elapsed()
        );
        // The client installs it and sends on it: the gateway follows at
        // once, without waiting out ACTIVATE_AFTER.
        let new = pair.spi_in;
        call.install(pair);
        assert!(ping(&mut call, 3), "no reply on the new pair");
        let after = call.last_spi_in();
        assert!(qm3.elapsed() < ACTIVATE_AFTER, "{:?}", qm3.elapsed());
        call.hang_up().unwrap();
        (old, new, before, pending, after)
    });
    assert_ne!(old, new);
    assert_eq!(before, Some(old));
    assert_eq!(
        pending,
        Some(old),
        "the gateway sent on the new SA before the client had it"
    );
    assert_eq!(
        after,
        Some(new),
        "the gateway did not move to the SA the client sends on"
    );
    let log = gw.log();
    assert!(
        log.contains("the gateway starts a Quick Mode"),
        "no gateway rekey:\n{log}"
    );
    assert!(
        log.contains(&format!("sending on ESP SA out {new:08x}")),
        "{log}"
    );
}

/// `vpn-ctl restart` while the new pair waits for the client: the
/// successor carries the waiting outbound SA (and the ISAKMP SA, whose
/// finished Quick Mode no longer keeps it from being carried), and moves
/// to the pair when the client sends on it.
#[test]
fn a_restart_while_the_new_pair_waits_carries_it() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, "fay", "fay-password-1", None);
    let psk = gw.ipsec_psk();
    let c1 = t.c1.name.clone();
    let gw = &gw;
    let (old, new, pending, after) = std::thread::scope(|s| {
        s.spawn(move || {
            enter_thread(&c1);
            let mut call = connect(&psk, "fay", 52);
            let old = call.spi_in();
            let (pair, qm3) = answer_rekey(&mut call, 0x5eed_0052);
            let said = gw.restart_in_place();
            assert!(said.contains("1 of 1 sessions carried over"), "{said}");
            assert!(
                qm3.elapsed() < ACTIVATE_AFTER,
                "the restart took longer than the gateway's wait for the client \
                 ({:?}): the pair may have been taken into use before it",
                qm3.elapsed()
            );
            assert_eq!(gw.count("counters", "ike_sas"), 1, "the ISAKMP SA carried");
            // The successor still sends on the old SA (it has no fallback
            // timer: the gateway's Quick Mode was not carried)...
            assert!(ping(&mut call, 1), "no reply after the restart");
            let pending = call.last_spi_in();
            // ...and moves when the client sends on the new pair.
            let new = pair.spi_in;
            call.install(pair);
            assert!(ping(&mut call, 2), "no reply on the new pair");
            let after = call.last_spi_in();
            call.hang_up().unwrap();
            (old, new, pending, after)
        })
        .join()
        .unwrap()
    });
    assert_eq!(gw.status()["restarts"].as_u64(), Some(1));
    assert_eq!(pending, Some(old), "before the client sent on the new pair");
    assert_eq!(
        after,
        Some(new),
        "the successor did not carry the waiting outbound SA"
    );
}

/// A client that reauthenticates (a new Main Mode from the same address
/// and port, as strongSwan does at its IKE lifetime) and leaves its ESP SA
/// to the gateway: the gateway's Quick Mode goes on the new ISAKMP SA, not
/// on the one being replaced, which the client ignores (strongSwan: "quick
/// mode request for unestablished IKE_SA"; the pair then expired with the
/// session). The rekey completes there and the call goes on.
#[test]
fn the_gateway_rekeys_on_the_clients_newest_isakmp_sa() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    add_user(&gw, "frank", "frank-password-1", None);
    let psk = gw.ipsec_psk();
    let (old, new, quick, replied) = in_ns(&t.c1.name, move || {
        let mut call = connect(&psk, "frank", 52);
        let old = call.cookies();
        call.reauthenticate(&psk, 52).unwrap();
        let new = call.cookies();
        let within = Duration::from_secs(2 * u64::from(LIFETIME));
        let quick = call.gateway_quick_mode_cookies(within).unwrap();
        if quick != new {
            return (old, new, quick, false); // on an SA this client left
        }
        // Answered (the gateway repeats its QM1), installed, used.
        let (pair, _) = answer_rekey(&mut call, 0x5eed_0052);
        call.install(pair);
        let replied = ping(&mut call, 1);
        call.hang_up().unwrap();
        (old, new, quick, replied)
    });
    assert_ne!(old, new);
    assert_eq!(
        quick, new,
        "the gateway's Quick Mode went on the ISAKMP SA being replaced"
    );
    assert!(replied, "no reply on the pair made on the new ISAKMP SA");
}
