//! Both ends back to back on a virtual clock: the handshake, the spec's test
//! vectors, and the data channel under loss, duplication, reordering,
//! replay, tampering, roaming and rekeying.
use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use super::{
    consts::*,
    crypto::{self, Cipher},
    handshake::*,
    messages::{AuthRequest, Reason, Welcome},
    session::*,
};

const PSK: &str = "correct horse battery staple";
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The gateway static key of the test vectors.
const GATEWAY_KEY: [u8; 32] = [0x33; 32];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn welcome() -> Welcome {
    Welcome {
        session_id: 0x0102_0304,
        address: CLIENT_IP,
        prefix_len: 24,
        gateway: Ipv4Addr::new(10, 99, 0, 1),
        routes: vec![(Ipv4Addr::new(172, 16, 10, 0), 24)],
        dns: vec![Ipv4Addr::new(10, 99, 0, 1)],
        mtu: DEFAULT_MTU,
        keepalive: Duration::from_secs(10),
        rekey: Duration::from_secs(600),
        udp_port: 7443,
    }
}

fn auth(password: &str) -> AuthRequest {
    AuthRequest {
        user: "alice".into(),
        password: zeroize::Zeroizing::new(password.into()),
        want_ip: None,
    }
}

struct Done {
    client: (Keys, Welcome),
    server: Keys,
    frames: Vec<Vec<u8>>,
}

/// Runs the four-frame handshake; the server accepts password "pw-alice".
fn handshake(
    client_psk: &str,
    password: &str,
    eph: Option<([u8; 32], [u8; 32])>,
) -> Result<Done, String> {
    let (psk, key) = (
        crypto::noise_psk(client_psk),
        crypto::gateway_public(&GATEWAY_KEY),
    );
    let (mut c, first) = match &eph {
        Some(e) => {
            ClientHandshake::start_with_ephemeral(&psk, &key, auth(password), &Cipher::ALL, &e.0)
        }
        None => ClientHandshake::start(&psk, &key, auth(password), &Cipher::ALL),
    };
    let mut s = ServerHandshake::new(
        &crypto::noise_psk(PSK),
        &crypto::StaticKey::new(&GATEWAY_KEY),
        &Cipher::ALL,
    );
    if let Some(e) = eph {
        s = s.with_fixed_ephemeral(e.1);
    }
    let mut frames = vec![first.clone()];
    crate::fuzz_seed::save("native_handshake", &[&[0u8][..], &first].concat());
    s.handle_bytes(&first);
    let Some(ServerStep::Send(server_init)) = s.poll().map_err(|e| {
        c.handle_bytes(e.reply.as_deref().unwrap_or_default());
        c.poll().err().map(|e| e.to_string()).unwrap_or_default()
    })?
    else {
        return Err("no SERVER_INIT".into());
    };
    frames.push(server_init.clone());
    c.handle_bytes(&server_init);
    let Some(ClientStep::Send(auth_frame)) = c.poll().map_err(|e| e.to_string())? else {
        return Err("no AUTH".into());
    };
    frames.push(auth_frame.clone());
    s.handle_bytes(&auth_frame);
    let Some(ServerStep::Authenticate(req)) = s.poll().map_err(|e| e.to_string())? else {
        return Err("no Authenticate".into());
    };
    assert_eq!(req.user, "alice");
    let reply;
    let server_keys;
    if *req.password == "pw-alice" {
        let (f, k) = s.accept(&welcome());
        reply = f;
        server_keys = Some(k);
    } else {
        reply = s.reject(Reason::BadCredentials, "");
        server_keys = None;
    }
    frames.push(reply.clone());
    c.handle_bytes(&reply);
    match c.poll().map_err(|e| e.to_string())? {
        Some(ClientStep::Established(k, w)) => Ok(Done {
            client: (k, w),
            server: server_keys.unwrap(),
            frames,
        }),
        _ => Err("no WELCOME".into()),
    }
}

#[test]
fn handshake_agrees_on_keys_and_carries_the_welcome() {
    let d = handshake(PSK, "pw-alice", None).unwrap();
    let (ck, w) = d.client;
    assert_eq!(w, welcome());
    assert_eq!(
        ck.cipher,
        Cipher::Aes256Gcm,
        "the gateway's first preference"
    );
    assert_eq!(ck.data.send, d.server.data.recv);
    assert_eq!(ck.data.recv, d.server.data.send);
    assert_ne!(ck.data.send, ck.data.recv);
    // No frame carries the password in clear.
    assert!(d
        .frames
        .iter()
        .all(|f| !f.windows(8).any(|w| w == b"pw-alice")));
}

#[test]
fn wrong_psk_is_refused_with_a_clear_message() {
    let err = handshake("not the psk", "pw-alice", None).err().unwrap();
    assert!(err.contains("pre-shared key does not match"), "{err}");
}

#[test]
fn wrong_password_is_rejected_inside_the_encrypted_channel() {
    let err = handshake(PSK, "guess", None).err().unwrap();
    assert_eq!(
        err,
        ClientError::Rejected(Reason::BadCredentials, String::new()).to_string()
    );
}

#[test]
fn garbage_and_truncated_hellos_fail_cleanly() {
    let (_, first) = ClientHandshake::start(
        &crypto::noise_psk(PSK),
        &crypto::gateway_public(&GATEWAY_KEY),
        auth("x"),
        &Cipher::ALL,
    );
    for cut in 0..first.len() {
        let mut s = ServerHandshake::new(
            &crypto::noise_psk(PSK),
            &crypto::StaticKey::new(&GATEWAY_KEY),
            &Cipher::ALL,
        );
        let mut f = first[..cut].to_vec();
        if cut >= 2 {
            let len = (cut - 2) as u16;
            f[..2].copy_from_slice(&len.to_be_bytes());
        }
        s.handle_bytes(&f);
        assert!(
            !matches!(s.poll(), Ok(Some(_))),
            "cut at {cut} was accepted"
        );
    }
    let mut s = ServerHandshake::new(
        &crypto::noise_psk(PSK),
        &crypto::StaticKey::new(&GATEWAY_KEY),
        &Cipher::ALL,
    );
    s.handle_bytes(b"\x00\x05GET /");
    let e = s.poll().err().unwrap();
    assert!(e.what.contains("bad magic"), "{}", e.what);
    assert!(e.reply.is_some());
}

/// Test vectors of docs/native-protocol.md (fixed ephemeral keys).
#[test]
fn spec_test_vectors() {
    assert_eq!(
        hex(&crypto::noise_psk(PSK)[..]),
        "cc8e5bc858e1da03e9a6ab9c1d5fbd3eb8b893a39539767c3a8323c0de55dd51"
    );
    let public = crypto::gateway_public(&GATEWAY_KEY);
    assert_eq!(
        hex(&public),
        "7b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b14"
    );
    assert_eq!(
        crypto::fingerprint(&public),
        "45e8:878c:be30:9666:d941:4aad:85c6:7867"
    );
    let eph = ([0x11u8; 32], [0x22u8; 32]);
    let d = handshake(PSK, "pw-alice", Some(eph)).unwrap();
    assert_eq!(
        hex(&d.frames[0]),
        "003b105643544c02027b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13036e97c04e31e19bb39b933e508e56e97a143214"
    );
    assert_eq!(
        hex(&d.frames[1]),
        "0034110faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20c851a9ca1e8df59920025fc2149a60c383bd57"
    );
    assert_eq!(
        hex(&d.client.0.data.send),
        "2713a7229f6e8211b67b5fa27e68704b7246fe6382c2f884b0abeaf41470d08e"
    );
    assert_eq!(
        hex(&d.client.0.data.recv),
        "6470b74d95463fb733a198b2238783d27cb41eadc5363885c090fed3b61b323c"
    );
    // One data packet: session 0x01020304, key 0, counter 7, a 20-byte IPv4 header.
    let ip = ipv4_packet(CLIENT_IP, Ipv4Addr::new(172, 16, 10, 2));
    let mut c = session(Role::Client, &d.client.0, Instant::now());
    for _ in 0..7 {
        c.seal_ip(Instant::now(), &ip, &mut Vec::new()).unwrap();
    }
    let mut out = Vec::new();
    c.seal_ip(Instant::now(), &ip, &mut out).unwrap();
    crate::fuzz_seed::save_frames("native_datagram", &[], &[&out]);
    crate::fuzz_seed::save("native_messages", &out);
    crate::fuzz_seed::save("native_messages", &welcome().encode());
    crate::fuzz_seed::save("native_messages", &auth("pw-alice").encode());
    assert_eq!(
        hex(&out),
        "0201000001020304000000000000000776765e1f5ca83e2daa15e58781f618cc176547bbf69110b442392ee7c6a96646e6356d73"
    );
}

pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p
}

fn params() -> Params {
    Params {
        keepalive: Duration::from_secs(10),
        rekey: Duration::from_secs(600),
    }
}

fn session(role: Role, k: &Keys, now: Instant) -> Session {
    Session::new(
        Setup {
            role,
            id: welcome().session_id,
            cipher: k.cipher,
            // KeyPair is not Clone: the test copies the bytes on purpose.
            data: crypto::KeyPair {
                send: k.data.send,
                recv: k.data.recv,
            },
            psk: crypto::noise_psk(PSK),
            params: params(),
            inner_addr: (role == Role::Server).then_some(CLIENT_IP),
            peer: None,
        },
        now,
    )
}

fn pair(now: Instant) -> (Session, Session) {
    let d = handshake(PSK, "pw-alice", None).unwrap();
    (
        session(Role::Client, &d.client.0, now),
        session(Role::Server, &d.server, now),
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn deliver(
    to: &mut Session,
    now: Instant,
    from: SocketAddr,
    d: &[u8],
) -> Result<Option<Vec<u8>>, Discard> {
    let mut buf = d.to_vec();
    to.handle_datagram(now, from, &mut buf)
        .map(|r| r.map(|r| buf[r].to_vec()))
}

/// Moves every queued control datagram from `a` to `b`.
fn flush(a: &mut Session, b: &mut Session, now: Instant, from: SocketAddr) {
    while let Some(d) = a.poll_transmit() {
        let _ = deliver(b, now, from, &d);
    }
}

#[test]
fn data_flows_both_ways_and_survives_loss_duplication_and_reordering() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let from = addr("198.18.1.2:40000");
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let mut p = ipv4_packet(CLIENT_IP, Ipv4Addr::new(172, 16, 10, 2));
        p.extend_from_slice(&i.to_be_bytes());
        let mut d = Vec::new();
        c.seal_ip(t0, &p, &mut d).unwrap();
        sent.push((p, d));
    }
    // Drop every 7th, deliver in a scrambled order, duplicate every 5th.
    let mut order: Vec<usize> = (0..200).filter(|i| i % 7 != 3).collect();
    order.reverse();
    order.rotate_left(50);
    let mut got = 0;
    for &i in &order {
        let (p, d) = &sent[i];
        assert_eq!(
            deliver(&mut s, t0, from, d).unwrap().as_deref(),
            Some(&p[..])
        );
        got += 1;
        if i % 5 == 0 {
            assert_eq!(deliver(&mut s, t0, from, d), Err(Discard::Replay));
        }
    }
    assert_eq!(s.stats.rx_packets, got);
    let dups = order.iter().filter(|&&i| i % 5 == 0).count() as u64;
    assert_eq!(s.stats.drops[Discard::Replay as usize], dups);
    // And back.
    let p = ipv4_packet(Ipv4Addr::new(172, 16, 10, 2), CLIENT_IP);
    let mut d = Vec::new();
    s.seal_ip(t0, &p, &mut d).unwrap();
    assert_eq!(
        deliver(&mut c, t0, addr("198.18.0.1:7443"), &d).unwrap(),
        Some(p)
    );
}

#[test]
fn tampered_truncated_spoofed_and_foreign_datagrams_are_counted_drops() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let from = addr("198.18.1.2:40000");
    let mut d = Vec::new();
    c.seal_ip(
        t0,
        &ipv4_packet(CLIENT_IP, Ipv4Addr::new(1, 1, 1, 1)),
        &mut d,
    )
    .unwrap();
    for i in 0..d.len() {
        let mut bad = d.clone();
        bad[i] ^= 0x40;
        assert!(
            deliver(&mut s, t0, from, &bad).is_err(),
            "flipped byte {i} accepted"
        );
    }
    for cut in 0..d.len() {
        assert!(deliver(&mut s, t0, from, &d[..cut]).is_err());
    }
    assert!(s.stats.drops[Discard::Auth as usize] > 0);
    assert_eq!(s.stats.drops[Discard::Truncated as usize], OVERHEAD as u64);
    // An inner source that is not the session's address.
    let mut spoof = Vec::new();
    c.seal_ip(
        t0,
        &ipv4_packet(Ipv4Addr::new(10, 99, 0, 3), Ipv4Addr::new(1, 1, 1, 1)),
        &mut spoof,
    )
    .unwrap();
    assert_eq!(deliver(&mut s, t0, from, &spoof), Err(Discard::Spoofed));
    // The genuine packet still passes after all that.
    assert!(deliver(&mut s, t0, from, &d).unwrap().is_some());
    assert_eq!(s.stats.rx_packets, 1);
}

#[test]
fn roaming_follows_the_newest_authentic_packet_only() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let (a, b) = (addr("198.18.1.2:40000"), addr("198.18.1.3:51000"));
    let ip = ipv4_packet(CLIENT_IP, Ipv4Addr::new(1, 1, 1, 1));
    let seal = |c: &mut Session| {
        let mut d = Vec::new();
        c.seal_ip(t0, &ip, &mut d).unwrap();
        d
    };
    let (d1, d2, d3) = (seal(&mut c), seal(&mut c), seal(&mut c));
    deliver(&mut s, t0, a, &d1).unwrap();
    assert_eq!(s.peer(), Some(a));
    deliver(&mut s, t0, b, &d3).unwrap();
    assert_eq!(s.peer(), Some(b));
    assert_eq!(s.poll(), Some(Event::PeerMoved(b)));
    // A late packet from the old address does not move the peer back.
    deliver(&mut s, t0, a, &d2).unwrap();
    assert_eq!(s.peer(), Some(b));
    // Nor does a forged packet from an attacker.
    let mut forged = seal(&mut c);
    forged[20] ^= 1;
    let _ = deliver(&mut s, t0, addr("203.0.113.9:1"), &forged);
    assert_eq!(s.peer(), Some(b));
}

#[test]
fn rekey_switches_both_sides_even_when_messages_are_lost() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let (ca, sa) = (addr("198.18.1.2:40000"), addr("198.18.0.1:7443"));
    let ip_up = ipv4_packet(CLIENT_IP, Ipv4Addr::new(1, 1, 1, 1));
    let ip_down = ipv4_packet(Ipv4Addr::new(1, 1, 1, 1), CLIENT_IP);
    // Keepalives keep both alive until the rekey is due.
    let mut now = t0;
    while now + Duration::from_secs(5) < t0 + params().rekey {
        now += Duration::from_secs(5);
        c.handle_timeout(now);
        flush(&mut c, &mut s, now, ca);
        flush(&mut s, &mut c, now, sa);
        s.handle_timeout(now);
        assert!(!c.is_closed() && !s.is_closed());
    }
    assert_eq!(c.key_id(), 0);
    now = t0 + params().rekey;
    // The first REKEY_INIT is lost.
    c.handle_timeout(now);
    while c.poll_transmit().is_some() {}
    // The retransmission gets through; the first answer is lost too.
    now += REKEY_RETRY;
    c.handle_timeout(now);
    flush(&mut c, &mut s, now, ca);
    while s.poll_transmit().is_some() {}
    now += REKEY_RETRY;
    c.handle_timeout(now);
    flush(&mut c, &mut s, now, ca); // duplicate INIT: the server resends its answer
                                    // Before the answer arrives, old-key data still flows both ways.
    let mut old_down = Vec::new();
    s.seal_ip(now, &ip_down, &mut old_down).unwrap();
    flush(&mut s, &mut c, now, sa);
    assert_eq!(c.key_id(), 1);
    assert_eq!(c.poll(), Some(Event::Rekeyed(1)));
    flush(&mut c, &mut s, now, ca); // the client's confirmation
    assert_eq!(s.key_id(), 1);
    assert!(
        deliver(&mut c, now, sa, &old_down).unwrap().is_some(),
        "previous key still accepted"
    );
    let mut d = Vec::new();
    c.seal_ip(now, &ip_up, &mut d).unwrap();
    assert_eq!(d[2], 1, "key id in the header");
    assert!(deliver(&mut s, now, ca, &d).unwrap().is_some());
    s.seal_ip(now, &ip_down, &mut d).unwrap();
    assert_eq!(d[2], 1);
    assert!(deliver(&mut c, now, sa, &d).unwrap().is_some());
}

#[test]
fn silence_kills_the_session_and_bye_ends_it_with_a_reason() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let dead = t0 + params().keepalive * DEAD_AFTER_KEEPALIVES + Duration::from_secs(1);
    assert!(s.poll_timeout() <= dead);
    s.handle_timeout(dead);
    assert_eq!(s.poll(), Some(Event::PeerDead));
    assert!(s.is_closed());

    let (mut c2, mut s2) = pair(t0);
    for d in s2.close(t0, Reason::Killed, "by admin") {
        let _ = deliver(&mut c2, t0, addr("198.18.0.1:7443"), &d);
    }
    assert_eq!(
        c2.poll(),
        Some(Event::Closed(Reason::Killed, "by admin".into()))
    );
    assert!(c2.seal_ip(t0, &[0x45], &mut Vec::new()).is_err());
    // The client probes a quiet gateway; with no answers it declares it dead.
    let mut now = t0;
    let mut probes = 0;
    while !c.is_closed() {
        now = c.poll_timeout();
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {
            probes += 1;
        }
    }
    assert!(probes >= 2, "keepalive probes before giving up: {probes}");
    assert_eq!(c.poll(), Some(Event::PeerDead));
    assert!(now - t0 <= params().keepalive * (DEAD_AFTER_KEEPALIVES + 1));
}

/// A gateway with the right PSK but another static key cannot read the
/// client's hello; its clear refusal names its key, which the client
/// reports as a mismatch, and the client never produces AUTH.
#[test]
fn a_gateway_with_another_key_is_named_and_never_gets_the_password() {
    let psk = crypto::noise_psk(PSK);
    let pinned = crypto::gateway_public(&GATEWAY_KEY);
    let (mut c, first) = ClientHandshake::start(&psk, &pinned, auth("pw-alice"), &Cipher::ALL);
    let rogue_key = [0x44u8; 32];
    let mut rogue = ServerHandshake::new(&psk, &crypto::StaticKey::new(&rogue_key), &Cipher::ALL);
    rogue.handle_bytes(&first);
    let refusal = rogue.poll().err().expect("the rogue cannot read the hello");
    c.handle_bytes(refusal.reply.as_deref().unwrap());
    match c.poll() {
        Err(ClientError::KeyMismatch {
            pinned: p,
            presented,
        }) => {
            assert_eq!(p, crypto::fingerprint(&pinned));
            assert_eq!(
                presented,
                crypto::fingerprint(&crypto::gateway_public(&rogue_key))
            );
        }
        other => panic!("expected a key mismatch, got {:?}", other.err()),
    }

    // An active attacker that answers with a SERVER_INIT of its own making
    // (from a handshake it runs with the rogue key): no AUTH, a clear error.
    let (mut c, first) = ClientHandshake::start(&psk, &pinned, auth("pw-alice"), &Cipher::ALL);
    let (_, other_first) = ClientHandshake::start(
        &psk,
        &crypto::gateway_public(&rogue_key),
        auth("x"),
        &Cipher::ALL,
    );
    let mut mitm = ServerHandshake::new(&psk, &crypto::StaticKey::new(&rogue_key), &Cipher::ALL);
    mitm.handle_bytes(&other_first);
    let Ok(Some(ServerStep::Send(forged))) = mitm.poll() else {
        panic!("the attacker's own handshake works");
    };
    let _ = first;
    c.handle_bytes(&forged);
    match c.poll() {
        Err(e @ ClientError::Crypto(_)) => {
            assert!(e.to_string().contains("not sending the password"), "{e}")
        }
        Ok(Some(ClientStep::Send(_))) => panic!("AUTH sent to a gateway without the pinned key"),
        other => panic!("unexpected {:?}", other.err()),
    }
}

/// The client gives up a rekey whose answers were all lost, then starts a
/// new one for the same epoch (a fresh ephemeral key): the gateway answers
/// it afresh instead of repeating the old answer, and the rekey completes.
#[test]
fn a_rekey_started_over_after_lost_answers_completes() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let ca = addr("198.18.1.2:40000");
    let sa = addr("198.18.0.1:7443");
    let mut now = t0;
    while now + Duration::from_secs(5) < t0 + params().rekey {
        now += Duration::from_secs(5);
        c.handle_timeout(now);
        flush(&mut c, &mut s, now, ca);
        flush(&mut s, &mut c, now, sa);
        s.handle_timeout(now);
    }
    now = t0 + params().rekey;
    c.handle_timeout(now); // REKEY_INIT
                           // Every INIT reaches the gateway, every answer is lost, until the client gives up.
    for _ in 0..REKEY_TRIES {
        flush(&mut c, &mut s, now, ca);
        while s.poll_transmit().is_some() {}
        now += REKEY_RETRY;
        c.handle_timeout(now);
    }
    while c.poll_transmit().is_some() {}
    assert_eq!(c.key_id(), 0, "gave up");
    // Keepalives keep both alive; the next rekey starts over for the same
    // epoch, and this time the answer arrives.
    let gave_up = now;
    while now < gave_up + params().rekey + Duration::from_secs(5) && c.key_id() == 0 {
        now += Duration::from_secs(1);
        c.handle_timeout(now);
        flush(&mut c, &mut s, now, ca);
        flush(&mut s, &mut c, now, sa);
        s.handle_timeout(now);
        assert!(!c.is_closed() && !s.is_closed());
    }
    assert_eq!(c.key_id(), 1, "the fresh INIT got a fresh answer");
    assert_eq!(c.poll(), Some(Event::Rekeyed(1)));
}

/// A client that keeps sending but never renews its keys: the gateway ends
/// the session once the keys are twice the rekey interval old, with a BYE.
#[test]
fn the_gateway_ends_a_session_whose_keys_are_never_renewed() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let ca = addr("198.18.1.2:40000");
    let ip = ipv4_packet(CLIENT_IP, Ipv4Addr::new(172, 16, 10, 2));
    let mut now = t0;
    while now < t0 + 2 * params().rekey + Duration::from_secs(5) && !s.is_closed() {
        now += Duration::from_secs(5);
        // Data only: the client's own timers (and so its rekeys) never run.
        let mut d = Vec::new();
        c.seal_ip(now, &ip, &mut d).unwrap();
        let _ = deliver(&mut s, now, ca, &d);
        s.handle_timeout(now);
    }
    assert!(s.is_closed(), "closed after twice the rekey interval");
    assert!(now >= t0 + 2 * params().rekey);
    assert!(
        std::iter::from_fn(|| s.poll()).any(|e| matches!(e, Event::Closed(Reason::Expired, _))),
        "an Expired event for the daemon"
    );
    assert!(s.poll_transmit().is_some(), "a BYE for the client");
}

#[test]
fn a_carried_gateway_session_keeps_keys_windows_endpoint_and_totals() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(t0);
    let ca = addr("198.18.1.2:40000");
    let sa = addr("198.18.0.1:7443");
    let up = ipv4_packet(CLIENT_IP, Ipv4Addr::new(172, 16, 10, 2));
    let down = ipv4_packet(Ipv4Addr::new(172, 16, 10, 2), CLIENT_IP);
    let mut early = Vec::new();
    for _ in 0..3 {
        let mut d = Vec::new();
        c.seal_ip(t0, &up, &mut d).unwrap();
        assert!(deliver(&mut s, t0, ca, &d).unwrap().is_some());
        early.push(d);
    }
    flush(&mut c, &mut s, t0, ca);
    let mut last_down = Vec::new();
    s.seal_ip(t0, &down, &mut last_down).unwrap();
    assert!(deliver(&mut c, t0, sa, &last_down).unwrap().is_some());

    let later = t0 + Duration::from_secs(2);
    let carried = s.carry(later).expect("a live gateway session");
    let json = serde_json::to_string(&carried).unwrap();
    let carried: super::carry::SessionCarry = serde_json::from_str(&json).unwrap();
    let mut r = Session::resume(&carried, crypto::noise_psk(PSK), params(), later).unwrap();
    assert!(c.carry(later).is_none(), "only the gateway side is carried");

    assert_eq!(r.peer(), Some(ca));
    assert_eq!(r.stats.rx_packets, s.stats.rx_packets);
    assert_eq!(r.stats.tx_packets, s.stats.tx_packets);
    // The replay window came along: old datagrams stay replays.
    for d in &early {
        assert_eq!(deliver(&mut r, later, ca, d), Err(Discard::Replay));
    }
    // Both directions go on under the same keys.
    let mut d = Vec::new();
    c.seal_ip(later, &up, &mut d).unwrap();
    assert_eq!(deliver(&mut r, later, ca, &d).unwrap(), Some(up.clone()));
    let mut d = Vec::new();
    r.seal_ip(later, &down, &mut d).unwrap();
    assert_eq!(deliver(&mut c, later, sa, &d).unwrap(), Some(down));
    // A counter the old process could still have used is never reused.
    let old = super::messages::DataHeader::decode(&last_down).unwrap();
    let new = super::messages::DataHeader::decode(&d).unwrap();
    assert!(new.counter >= old.counter + super::carry::SEND_COUNTER_MARGIN);
    // Keepalives and rekeys go on from there.
    let mut now = later;
    while c.key_id() == 0 {
        now += Duration::from_secs(5);
        c.handle_timeout(now);
        r.handle_timeout(now);
        flush(&mut c, &mut r, now, ca);
        flush(&mut r, &mut c, now, sa);
        assert!(!c.is_closed() && !r.is_closed());
    }
    flush(&mut r, &mut c, now, sa);
    flush(&mut c, &mut r, now, ca);
    assert_eq!((c.key_id(), r.key_id()), (1, 1));
}
