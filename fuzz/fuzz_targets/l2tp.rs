//! L2TP: the header (length-checked prefixes), AVPs with and without a
//! tunnel secret (hidden AVPs), and a tunnel's control engine fed
//! arbitrary datagrams: no panic.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vpn_proto::l2tp::{
    avp,
    header::Header,
    tunnel::{Tunnel, TunnelConfig},
};

fuzz_target!(|data: &[u8]| {
    // The whole input as one datagram, and as a framed sequence below.
    if let Ok(h) = Header::decode(data) {
        assert!(h.payload_at <= h.end && h.end <= data.len());
        if h.control {
            for n in 0..h.payload_at.min(data.len()) {
                assert!(Header::decode(&data[..n]).is_err(), "prefix {n}");
            }
        }
    }
    let _ = avp::parse(data, None);
    let _ = avp::parse(data, Some(b"tunnel-secret"));
    let _ = Tunnel::sccrq_ids(data, Some(b"tunnel-secret"));
    let now = Instant::now();
    for secret in [None, Some(b"tunnel-secret".to_vec())] {
        let cfg = TunnelConfig {
            host_name: "fuzz".into(),
            secret,
            hide_avps: false,
            hello_interval: Duration::from_secs(60),
            max_sessions: 4,
        };
        let mut t = Tunnel::new(cfg, 1, 2, Some(4), [5; 32], now);
        for datagram in vpn_fuzz::frames(data) {
            let _ = t.handle_datagram(now, datagram);
            while t.poll_transmit().is_some() {}
            while t.poll().is_some() {}
        }
    }
});
