//! PPP MRUs follow the WAN's MTU: on a 1500-byte WAN the gateway asks for
//! 1400 (PPTP, L2TP) and 1360 (L2TP/IPsec); on a cloud's 1460 for 40 less,
//! so tunnel packets still fit unfragmented. Read from the project's own
//! clients (the MRU the gateway's LCP asked them for). Needs root.
use std::net::Ipv4Addr;

use vpn_tests::{
    gateway::Gateway,
    ipsec_peer::IpsecCall,
    l2tp_peer::L2tpCall,
    native_client::add_user,
    netns::in_ns,
    pptp_peer::PptpCall,
    topology::{Topology, GW_WAN},
};

/// The gateway's MRU for (PPTP, L2TP, L2TP/IPsec) calls with WAN MTU `mtu`.
fn mrus(mtu: u32) -> (u16, u16, u16) {
    let t = Topology::build();
    t.gw.must(&format!("ip link set wan0 mtu {mtu}"));
    let gw = Gateway::start(
        &t.gw,
        "[pptp]\nenabled = true\nrequire_mppe = false\n[l2tp]\nallow_plain = true\n",
    );
    add_user(&gw, "mia", "mia-password-1", None);
    let psk = gw.ipsec_psk();
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    let got = in_ns(&t.c1.name, move || {
        let p = PptpCall::connect(gw_wan, "mia", "mia-password-1", false, 5).unwrap();
        let l = L2tpCall::connect(gw_wan, "mia", "mia-password-1", 6).unwrap();
        let i = IpsecCall::connect(gw_wan, &psk, "mia", "mia-password-1", 7).unwrap();
        let mrus = (
            p.ppp.gateway_mru(),
            l.ppp.gateway_mru(),
            i.l2tp.ppp.gateway_mru(),
        );
        p.hang_up().unwrap();
        l.hang_up().unwrap();
        i.hang_up().unwrap();
        mrus
    });
    if mtu < 1500 {
        assert!(gw
            .log()
            .contains(&format!("has MTU {mtu}: PPP MRUs lowered")));
    }
    got
}

#[test]
fn ppp_mrus_follow_the_wan_mtu() {
    assert_eq!(mrus(1500), (1400, 1400, 1360));
    assert_eq!(mrus(1460), (1360, 1360, 1320));
}
