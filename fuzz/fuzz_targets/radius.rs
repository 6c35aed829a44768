//! RADIUS datagrams as the gateway receives them: answers to its requests
//! (the client engine, then the PPP verdict and MPPE keys from an accept)
//! and dynamic-authorization requests. No panic; a packet that parses
//! encodes back to the same bytes.
#![no_main]
use std::{net::SocketAddr, time::Instant};

use libfuzzer_sys::fuzz_target;
use vpn_proto::{
    ppp::auth::Credentials,
    radius::{
        client::{Client, Kind, Request, Server, Settings},
        consts::*,
        dae, login,
        packet::{self, Packet},
    },
};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        assert_eq!(p.to_bytes(), &data[..len]);
        let creds = Credentials::Pap {
            user: "alice".into(),
            password: Zeroizing::new(b"pw".to_vec()),
        };
        let _ = login::ppp_verdict(&creds, Some((&p, &[7; 16])), SECRET);
        let _ = login::Grant::of(&p);
    }
    let _ = packet::verify_response(data, &[7; 16], SECRET);
    let _ = packet::reveal_mppe_key(data, &[7; 16], SECRET);
    let _ = packet::reveal_password(data, &[7; 16], SECRET);
    if let Ok((req, _)) = dae::handle_request(data, SECRET) {
        let _ = dae::reply(&req, None, SECRET);
    }
    // The client engine with one request in flight, fed the datagram.
    let server: SocketAddr = "192.0.2.1:1812".parse().unwrap();
    let mut c = Client::new(
        vec![Server {
            auth: server,
            acct: "192.0.2.1:1813".parse().unwrap(),
            secret: Zeroizing::new(SECRET.to_vec()),
        }],
        Settings {
            timeout: std::time::Duration::from_secs(1),
            tries: 2,
            dead_time: std::time::Duration::from_secs(10),
            require_message_authenticator: data.first().is_some_and(|b| b & 1 == 1),
        },
    );
    let mut rnd = || [7u8; 16];
    let mut p = Packet::new(ACCESS_REQUEST, 0);
    p.add(USER_NAME, b"alice");
    c.submit(
        Instant::now(),
        Request {
            packet: p,
            password: Some(Zeroizing::new(b"pw".to_vec())),
        },
        Kind::Auth,
        &mut rnd,
    );
    let _ = c.handle_datagram(Instant::now(), server, data, &mut rnd);
    while c.poll_transmit().is_some() {}
    while c.poll_answer().is_some() {}
});
