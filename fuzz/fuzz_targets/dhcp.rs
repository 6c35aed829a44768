//! DHCPINFORM handling on arbitrary IPv4 packets from a PPP client: no
//! panic; an answer is a well-formed DHCP message whose options parse.
#![no_main]
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vpn_proto::dhcp::{self, InformAnswer};

fuzz_target!(|data: &[u8]| {
    let routes = [
        (Ipv4Addr::new(172, 16, 10, 0), 24),
        (Ipv4Addr::new(10, 20, 0, 0), 16),
    ];
    let dns = [Ipv4Addr::new(172, 16, 10, 2)];
    let a = InformAnswer {
        server: Ipv4Addr::new(10, 99, 0, 1),
        routes: &routes,
        dns: &dns,
    };
    let _ = dhcp::message_options(data);
    if let Some(ack) = dhcp::answer_inform(data, Ipv4Addr::new(10, 99, 0, 2), &a) {
        // IPv4 (20) + UDP (8), then the DHCP message.
        assert!(ack.len() > 28);
        assert!(dhcp::message_options(&ack[28..]).is_some());
    }
});
