//! The gateway's side of the native handshake fed arbitrary bytes, in
//! arbitrary pieces: no panic, and it either waits, answers or fails.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::native::{
    crypto::{self, Cipher, StaticKey},
    handshake::{ServerHandshake, ServerStep},
};

fuzz_target!(|data: &[u8]| {
    let psk = crypto::noise_psk("fuzzing-pre-shared-key");
    let mut hs = ServerHandshake::new(&psk, &StaticKey::new(&[7u8; 32]), &Cipher::ALL);
    // The first byte says where to split, so partial frames are exercised.
    let (cut, rest) = match data.split_first() {
        Some((c, r)) => (usize::from(*c).min(r.len()), r),
        None => return,
    };
    for piece in [&rest[..cut], &rest[cut..]] {
        hs.handle_bytes(piece);
        loop {
            match hs.poll() {
                Ok(None) => break,
                Ok(Some(ServerStep::Send(_))) => {}
                Ok(Some(ServerStep::Authenticate(_))) | Err(_) => return,
            }
        }
    }
});
