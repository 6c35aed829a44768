//! MPPE receive (stateless and stateful, 40 and 128 bits) on arbitrary
//! packets: no panic, a returned range inside the packet, and the catch-up
//! work bounded (the call is dropped, not spun).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::ppp::mppe::{Mppe, Strength};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let strength = if mode & 1 == 0 {
        Strength::Bits128
    } else {
        Strength::Bits40
    };
    let mut m = Mppe::new(&[0x42; 16], strength, mode & 2 != 0);
    for packet in vpn_fuzz::frames(rest) {
        let mut p = packet.to_vec();
        if let Ok(r) = m.decrypt(&mut p) {
            assert!(r.start <= r.end && r.end <= p.len());
        }
    }
});
