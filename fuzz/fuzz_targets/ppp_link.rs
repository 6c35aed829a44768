//! The gateway's PPP link (LCP, PAP, MS-CHAPv2, IPCP, CCP, MPPE, echoes)
//! fed arbitrary frames and time: no panic; an IP range it returns lies
//! inside the frame.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vpn_proto::ppp::{
    lcp::Auth,
    link::{Link, LinkConfig, LinkEvent},
    mschap::NtHash,
};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let cfg = LinkConfig {
        auth: vec![Auth::MsChapV2, Auth::Pap],
        require_mppe: false,
        allow_mppe_128: true,
        allow_mppe_40: true,
        mru: 1400,
        echo_interval: Duration::from_secs(10),
        echo_failures: 3,
    };
    let mut link = Link::new(cfg, [9; 32], now);
    let lookup = |u: &str| (u == "alice").then(|| NtHash::of_password("alice-password"));
    for (i, frame) in vpn_fuzz::frames(data).enumerate() {
        let mut f = frame.to_vec();
        if let Ok(Some(r)) = link.handle_frame(now, &mut f) {
            assert!(r.start <= r.end && r.end <= f.len());
        }
        while link.poll_transmit().is_some() {}
        while let Some(e) = link.poll() {
            if let LinkEvent::Verify(c) = e {
                link.auth_verdict(now, c.check(lookup(c.user()).as_ref()));
            }
        }
        // Time passes now and then: restarts, echoes, give-ups.
        if i % 4 == 3 {
            now += Duration::from_secs(3);
            link.handle_timeout(now);
        }
    }
});
