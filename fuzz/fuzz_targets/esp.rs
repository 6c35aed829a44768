//! ESP receive for every transform the gateway offers: no panic on any
//! packet; nothing is accepted without a valid ICV (random input never
//! carries one).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::{esp::Inbound, ike::proposal::phase2_preferences};

fuzz_target!(|data: &[u8]| {
    for t in phase2_preferences(true) {
        let keymat = vec![0x33u8; t.keymat_len()];
        let mut sa = Inbound::new(0x0102_0304, t, &keymat);
        let mut p = data.to_vec();
        assert!(
            sa.open(&mut p).is_err(),
            "{t:?} accepted a packet without a valid ICV"
        );
    }
});
