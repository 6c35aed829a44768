//! A PPTP control connection fed an arbitrary TCP stream, plus the message
//! parser: no panic; a message cut short by its own length is refused.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use vpn_proto::pptp::{control::ControlConnection, messages};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut c = ControlConnection::new(now, 0x1234_5678);
    let (cut, rest) = match data.split_first() {
        Some((c, r)) => (usize::from(*c).min(r.len()), r),
        None => return,
    };
    for piece in [&rest[..cut], &rest[cut..]] {
        if c.handle_bytes(now, piece).is_err() {
            break;
        }
        while c.poll_transmit().is_some() {}
        while c.poll().is_some() {}
    }
    if messages::parse(data).is_ok() {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        for n in 0..len.min(data.len()).min(16) {
            assert!(messages::parse(&data[..n]).is_err(), "prefix {n}");
        }
    }
});
