//! IKEv1: the header (its length refuses strict prefixes), payload chains
//! and attributes, each payload decoder, and the responder's answer to a
//! first message and what follows: no panic.
#![no_main]
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use vpn_proto::ike::{
    message::{self, Delete, Header, Identity, Notify, SaPayload},
    responder::{Config, Endpoints, Host, IkeSa},
};

struct FixedHost(u32);

impl Host for FixedHost {
    fn random(&mut self, buf: &mut [u8]) {
        buf.iter_mut().for_each(|b| *b = 0x5a);
    }
    fn new_spi(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one message, and as a framed exchange below.
    if let Ok(h) = Header::decode(data) {
        let mut enc = Vec::new();
        h.encode(&mut enc);
        enc.resize(h.length as usize, 0);
        message::set_length(&mut enc);
        assert_eq!(Header::decode(&enc), Ok(h.clone()));
        for n in 0..28.min(data.len()) {
            assert!(Header::decode(&data[..n]).is_err(), "prefix {n}");
        }
        let body = &data[28..(h.length as usize).min(data.len())];
        if let Ok((payloads, _)) = message::split(h.next, body) {
            for p in payloads {
                let _ = SaPayload::decode(p.body);
                let _ = Notify::decode(p.body);
                let _ = Delete::decode(p.body);
                let _ = Identity::decode(p.body);
                let _ = message::attributes(p.body);
            }
        }
    }
    let cfg = Arc::new(Config {
        psk: zeroize::Zeroizing::new(b"fuzzing-psk".to_vec()),
        legacy: true,
        max_phase1_life: Duration::from_secs(3600),
        max_phase2_life: Duration::from_secs(3600),
        setup_deadline: Duration::from_secs(30),
    });
    let ends = Endpoints {
        local: "198.18.0.1:500".parse().unwrap(),
        remote: "198.18.1.2:500".parse().unwrap(),
    };
    let mut host = FixedHost(0x1000);
    let now = Instant::now();
    // The framed messages: the first to `respond`, the rest to the SA.
    let mut msgs = vpn_fuzz::frames(data);
    let Some(first) = msgs.next() else { return };
    if let Ok(mut sa) = IkeSa::respond(cfg, now, ends, first, &mut host) {
        for m in msgs {
            let _ = sa.handle_message(now, m, &mut host);
            while sa.poll_transmit().is_some() {}
            while sa.poll().is_some() {}
        }
    }
});
