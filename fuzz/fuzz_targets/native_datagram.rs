//! A server session receiving arbitrary datagrams (data, keepalive,
//! rekey, close): no panic; anything it accepts as IP lies inside the
//! datagram.
#![no_main]
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use vpn_proto::native::{
    crypto::{self, Cipher, KeyPair},
    session::{Params, Role, Session, Setup},
};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut s = Session::new(
        Setup {
            role: Role::Server,
            id: 0x0102_0304,
            cipher: Cipher::ALL[0],
            data: KeyPair {
                send: [1; 32],
                recv: [2; 32],
            },
            psk: crypto::noise_psk("fuzzing-pre-shared-key"),
            params: Params {
                keepalive: Duration::from_secs(10),
                rekey: Duration::from_secs(600),
            },
            inner_addr: Some([10, 99, 0, 2].into()),
            peer: None,
        },
        now,
    );
    let from: SocketAddr = "198.18.1.2:40000".parse().unwrap();
    for datagram in vpn_fuzz::frames(data) {
        let mut d = datagram.to_vec();
        if let Ok(Some(r)) = s.handle_datagram(now, from, &mut d) {
            assert!(r.end <= d.len() && r.start <= r.end);
        }
        while s.poll_transmit().is_some() {}
        while s.poll().is_some() {}
    }
});
