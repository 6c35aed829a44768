//! The responder's state machine against the test initiator: both sides'
//! ESP keys agree, retransmissions, refusals, NAT detection deciding the
//! encapsulation, DPD, deletes, deadlines and lifetimes.
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::ike::initiator::{transform, Initiator};
use crate::{
    esp::{self, EspCipher, EspInteg, EspTransform, NEXT_UDP},
    ike::{
        consts::*,
        crypto::CbcAlg,
        message::{split, Header, Notify},
        responder::{ChildSa, Config, Endpoints, Host, IkeError, IkeEvent, IkeSa},
    },
};

const PSK: &[u8] = b"the gateway's pre-shared key";

struct TestHost(u32);

impl Host for TestHost {
    fn random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (self.0 >> 16) as u8;
        }
    }

    fn new_spi(&mut self) -> u32 {
        self.0 += 1;
        0x1000 + self.0
    }
}

fn config(legacy: bool) -> Arc<Config> {
    Arc::new(Config {
        psk: zeroize::Zeroizing::new(PSK.to_vec()),
        legacy,
        max_phase1_life: Duration::from_secs(100),
        max_phase2_life: Duration::from_secs(3600),
        setup_deadline: Duration::from_secs(30),
    })
}

fn gw() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 500)
}

/// The client's address as the gateway sees it (its NAT's, if `nat`).
fn client_seen() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 2), 500)
}

fn client_private() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 168, 50, 11), 500)
}

fn ends() -> Endpoints {
    Endpoints {
        local: gw(),
        remote: client_seen(),
    }
}

fn aes128_sha1_modp2048() -> Vec<u8> {
    transform(ENC_AES_CBC, 128, HASH_SHA1, 14)
}

fn events(sa: &mut IkeSa) -> Vec<IkeEvent> {
    std::iter::from_fn(|| sa.poll()).collect()
}

struct Session {
    sa: IkeSa,
    i: Initiator,
    host: TestHost,
    now: Instant,
}

fn establish(nat: bool, psk: &[u8]) -> Result<Session, Box<(IkeSa, IkeError)>> {
    let now = Instant::now();
    let mut host = TestHost(1);
    let mut i = Initiator::new(psk, 7);
    let mm1 = i.mm1(
        &[aes128_sha1_modp2048()],
        &[&VID_NATT_RFC3947, &VID_DPD],
        EXCH_MAIN,
    );
    let mut sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    let mm2 = sa.poll_transmit().unwrap();
    let me = if nat { client_private() } else { client_seen() };
    let mm3 = i.mm3(&mm2, gw(), me);
    sa.handle_message(now, &mm3, &mut host).unwrap();
    let mm4 = sa.poll_transmit().unwrap();
    let mm5 = i.mm5(&mm4, false);
    crate::fuzz_seed::save_frames("ike", &[], &[&mm1, &mm3, &mm5]);
    if let Err(e) = sa.handle_message(now, &mm5, &mut host) {
        return Err(Box::new((sa, e)));
    }
    let mm6 = sa.poll_transmit().unwrap();
    i.mm6(&mm6);
    assert!(matches!(
        events(&mut sa)[..],
        [IkeEvent::Established {
            initial_contact: false
        }]
    ));
    Ok(Session { sa, i, host, now })
}

fn quick(s: &mut Session, mid: u32, encap: u16) -> Result<Box<ChildSa>, IkeError> {
    let qm1 =
        s.i.qm1(mid, 0xc0ffee01, ESP_AES_CBC, 128, Some(P2_AUTH_SHA1), encap);
    s.sa.handle_message(s.now, &qm1, &mut s.host)?;
    match events(&mut s.sa).pop() {
        Some(IkeEvent::Child(c)) => Ok(c),
        _ => panic!("no Child event"),
    }
}

#[test]
fn main_and_quick_mode_agree_on_esp_keys_in_both_directions() {
    let mut s = establish(true, PSK).ok().unwrap();
    assert!(s.sa.peer_behind_nat && !s.sa.we_behind_nat && s.sa.nat_detected());
    assert_eq!(s.sa.algorithms().unwrap(), "aes128-sha1-modp2048");
    let child = quick(&mut s, 0x0101_0101, ENCAP_UDP_TRANSPORT).unwrap();
    assert!(child.udp_encap);
    assert_eq!(child.spi_out, 0xc0ffee01);
    assert_eq!(child.client_port, L2TP_PORT);
    let t = EspTransform {
        cipher: EspCipher::Cbc(CbcAlg::Aes128),
        integ: EspInteg::HmacSha1_96,
    };
    assert_eq!(child.transform, t);
    let qm2 = s.sa.poll_transmit().unwrap();
    let (qm3, spi_r, km) = s.i.qm3(&qm2, t.keymat_len());
    assert_eq!(spi_r, child.spi_in);
    assert_eq!(km, *child.keymat_in);
    // What the client seals, the gateway opens.
    let mut pkt = Vec::new();
    esp::Outbound::new(spi_r, t, &km)
        .seal(NEXT_UDP, b"l2tp", &mut pkt)
        .unwrap();
    let mut inb = esp::Inbound::new(child.spi_in, t, &child.keymat_in);
    let o = inb.open(&mut pkt).unwrap();
    assert_eq!(&pkt[o.start..o.end], b"l2tp");
    s.sa.handle_message(s.now, &qm3, &mut s.host).unwrap();
    assert!(
        matches!(events(&mut s.sa)[..], [IkeEvent::ChildActive { spi_in }] if spi_in == child.spi_in)
    );
}

#[test]
fn repeated_messages_get_the_same_answers() {
    let now = Instant::now();
    let mut host = TestHost(3);
    let mut i = Initiator::new(PSK, 9);
    let mm1 = i.mm1(&[aes128_sha1_modp2048()], &[], EXCH_MAIN);
    let mut sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    let mm2 = sa.poll_transmit().unwrap();
    sa.handle_message(now, &mm1, &mut host).unwrap();
    assert_eq!(sa.poll_transmit().unwrap(), mm2, "MM1 again: MM2 again");
    let mm3 = i.mm3(&mm2, gw(), client_seen());
    sa.handle_message(now, &mm3, &mut host).unwrap();
    let mm4 = sa.poll_transmit().unwrap();
    sa.handle_message(now, &mm3, &mut host).unwrap();
    assert_eq!(sa.poll_transmit().unwrap(), mm4, "MM3 again: MM4 again");
    let mm5 = i.mm5(&mm4, false);
    sa.handle_message(now, &mm5, &mut host).unwrap();
    let mm6 = sa.poll_transmit().unwrap();
    sa.handle_message(now, &mm5, &mut host).unwrap();
    assert_eq!(sa.poll_transmit().unwrap(), mm6, "MM5 again: MM6 again");
    i.mm6(&mm6);
    events(&mut sa);
    let mut s = Session { sa, i, host, now };
    // No NAT-T here: plain transport mode.
    let qm1 = s.i.qm1(
        77,
        0xabcd_0001,
        ESP_AES_CBC,
        256,
        Some(P2_AUTH_SHA256),
        ENCAP_TRANSPORT,
    );
    s.sa.handle_message(now, &qm1, &mut s.host).unwrap();
    let qm2 = s.sa.poll_transmit().unwrap();
    s.sa.handle_message(now, &qm1, &mut s.host).unwrap();
    assert_eq!(s.sa.poll_transmit().unwrap(), qm2, "QM1 again: QM2 again");
    let children = events(&mut s.sa)
        .into_iter()
        .filter(|e| matches!(e, IkeEvent::Child(_)))
        .count();
    assert_eq!(children, 1, "one SA, however often QM1 comes");
}

#[test]
fn a_wrong_psk_fails_main_mode_with_a_notification() {
    let Err(failed) = establish(true, b"not the pre-shared key") else {
        panic!("a wrong PSK was accepted");
    };
    let (mut sa, e) = *failed;
    assert_eq!(e, IkeError::AuthFailed);
    assert!(sa.is_dead());
    let n = sa.poll_transmit().unwrap();
    let h = Header::decode(&n).unwrap();
    assert_eq!((h.exchange, h.flags), (EXCH_INFO, 0));
    let (p, _) = split(h.next, &n[HEADER_LEN..]).unwrap();
    let kind = Notify::decode(p[0].body).unwrap().kind;
    assert!(
        kind == N_PAYLOAD_MALFORMED || kind == N_INVALID_HASH_INFORMATION,
        "{kind}"
    );
    assert!(matches!(events(&mut sa)[..], [IkeEvent::Closed { .. }]));
}

#[test]
fn nat_detection_decides_the_encapsulation() {
    let mut s = establish(false, PSK).ok().unwrap();
    assert!(!s.sa.nat_detected());
    assert_eq!(
        quick(&mut s, 5, ENCAP_UDP_TRANSPORT).err(),
        Some(IkeError::NoProposal)
    );
    // Refused with a protected NO-PROPOSAL-CHOSEN; the ISAKMP SA stays up.
    let n = s.sa.poll_transmit().unwrap();
    let p = s.i.open_info(&n);
    assert_eq!(Notify::decode(&p[0].1).unwrap().kind, N_NO_PROPOSAL_CHOSEN);
    assert!(s.sa.is_up());
    let c = quick(&mut s, 6, ENCAP_TRANSPORT).unwrap();
    assert!(!c.udp_encap);
    // Tunnel mode is never accepted (L2TP/IPsec is transport mode).
    let mut s = establish(true, PSK).ok().unwrap();
    assert_eq!(
        quick(&mut s, 7, ENCAP_UDP_TUNNEL).err(),
        Some(IkeError::NoProposal)
    );
}

#[test]
fn a_tampered_quick_mode_is_refused() {
    let mut s = establish(true, PSK).ok().unwrap();
    let mut qm1 = s.i.qm1(
        9,
        1234,
        ESP_AES_CBC,
        128,
        Some(P2_AUTH_SHA1),
        ENCAP_UDP_TRANSPORT,
    );
    let n = qm1.len();
    qm1[n - 20] ^= 1;
    assert!(s.sa.handle_message(s.now, &qm1, &mut s.host).is_err());
    assert!(events(&mut s.sa).is_empty());
    assert!(s.sa.poll_transmit().is_none());
}

#[test]
fn dpd_is_answered_and_deletes_are_reported() {
    let mut s = establish(true, PSK).ok().unwrap();
    let cookies: Vec<u8> = [s.i.icookie, s.i.rcookie].concat();
    let ping = s.i.info(
        31,
        PL_NOTIFY,
        &crate::ike::message::notify(PROTO_ISAKMP, &cookies, N_R_U_THERE, &42u32.to_be_bytes()),
    );
    s.sa.handle_message(s.now, &ping, &mut s.host).unwrap();
    let ack = s.sa.poll_transmit().unwrap();
    let p = s.i.open_info(&ack);
    let n = Notify::decode(&p[0].1).unwrap();
    assert_eq!(
        (n.kind, n.data),
        (N_R_U_THERE_ACK, &42u32.to_be_bytes()[..])
    );
    let del = s.i.info(
        32,
        PL_DELETE,
        &crate::ike::message::delete(PROTO_ESP, &[&0xc0ffee01u32.to_be_bytes()]),
    );
    s.sa.handle_message(s.now, &del, &mut s.host).unwrap();
    assert!(events(&mut s.sa)
        .iter()
        .any(|e| matches!(e, IkeEvent::DeleteChild { spi: 0xc0ffee01 })));
    // A Delete naming another SA's cookies changes nothing.
    let other = s.i.info(
        33,
        PL_DELETE,
        &crate::ike::message::delete(PROTO_ISAKMP, &[&[7u8; 16]]),
    );
    s.sa.handle_message(s.now, &other, &mut s.host).unwrap();
    assert!(s.sa.is_up());
    let bye = s.i.info(
        34,
        PL_DELETE,
        &crate::ike::message::delete(PROTO_ISAKMP, &[&cookies]),
    );
    s.sa.handle_message(s.now, &bye, &mut s.host).unwrap();
    assert!(s.sa.is_dead());
    assert!(matches!(
        events(&mut s.sa).last(),
        Some(IkeEvent::Closed { .. })
    ));
}

#[test]
fn half_open_sas_expire_and_aggressive_mode_is_refused() {
    let now = Instant::now();
    let mut host = TestHost(5);
    let mut i = Initiator::new(PSK, 11);
    let mm1 = i.mm1(&[aes128_sha1_modp2048()], &[], EXCH_MAIN);
    let mut sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    let deadline = sa.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    sa.handle_timeout(now + Duration::from_secs(29), &mut host);
    assert!(!sa.is_dead());
    sa.handle_timeout(deadline, &mut host);
    assert!(sa.is_dead());

    let agg = Initiator::new(PSK, 12).mm1(&[aes128_sha1_modp2048()], &[], EXCH_AGGRESSIVE);
    let r = IkeSa::respond(config(true), now, ends(), &agg, &mut host)
        .err()
        .unwrap();
    let reply = r.reply.unwrap();
    let h = Header::decode(&reply).unwrap();
    let (p, _) = split(h.next, &reply[HEADER_LEN..]).unwrap();
    assert_eq!(
        Notify::decode(p[0].body).unwrap().kind,
        N_INVALID_EXCHANGE_TYPE
    );
}

#[test]
fn the_gateways_preference_and_legacy_switch_decide_phase1() {
    let now = Instant::now();
    let mut host = TestHost(8);
    let offer = [
        transform(ENC_AES_CBC, 256, HASH_SHA1, 2),
        transform(ENC_3DES, 0, HASH_SHA1, 2),
        transform(ENC_AES_CBC, 128, HASH_SHA1, 14),
    ];
    let mm1 = Initiator::new(PSK, 13).mm1(&offer, &[], EXCH_MAIN);
    let sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    assert_eq!(
        sa.algorithms().unwrap(),
        "aes128-sha1-modp2048",
        "MODP2048 first, whatever the client's order"
    );
    let android = Initiator::new(PSK, 14).mm1(&offer[..2], &[], EXCH_MAIN);
    let sa = IkeSa::respond(config(true), now, ends(), &android, &mut host)
        .ok()
        .unwrap();
    assert_eq!(sa.algorithms().unwrap(), "aes256-sha1-modp1024");
    let r = IkeSa::respond(config(false), now, ends(), &android, &mut host)
        .err()
        .unwrap();
    assert_eq!(r.error, IkeError::NoProposal);
    assert!(r.reason.contains("legacy off"), "{}", r.reason);
    // Windows' list: the curves first, and P-256 before P-384 here.
    let windows = [
        transform(ENC_AES_CBC, 256, HASH_SHA1, 20),
        transform(ENC_AES_CBC, 128, HASH_SHA1, 19),
        transform(ENC_AES_CBC, 256, HASH_SHA1, 14),
    ];
    let mm1 = Initiator::new(PSK, 15).mm1(&windows, &[], EXCH_MAIN);
    let sa = IkeSa::respond(config(false), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    assert_eq!(sa.algorithms().unwrap(), "aes128-sha1-ecp256");
}

#[test]
fn main_mode_over_ecp384_and_sha256_establishes() {
    let now = Instant::now();
    let mut host = TestHost(21);
    let mut i = Initiator::new(PSK, 17);
    i.group = crate::ike::dh::DhGroup::Ecp384;
    i.hash = crate::ike::crypto::HashAlg::Sha256;
    i.cipher = CbcAlg::Aes256;
    let mm1 = i.mm1(
        &[transform(ENC_AES_CBC, 256, HASH_SHA256, 20)],
        &[],
        EXCH_MAIN,
    );
    let mut sa = IkeSa::respond(config(false), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    assert_eq!(sa.algorithms().unwrap(), "aes256-sha256-ecp384");
    let mm2 = sa.poll_transmit().unwrap();
    let mm3 = i.mm3(&mm2, gw(), client_seen());
    sa.handle_message(now, &mm3, &mut host).unwrap();
    let mm4 = sa.poll_transmit().unwrap();
    let mm5 = i.mm5(&mm4, true);
    sa.handle_message(now, &mm5, &mut host).unwrap();
    i.mm6(&sa.poll_transmit().unwrap());
    assert!(matches!(
        events(&mut sa)[..],
        [IkeEvent::Established {
            initial_contact: true
        }]
    ));
}

#[test]
fn the_lifetime_ceiling_ends_the_sa_with_a_delete() {
    let mut s = establish(true, PSK).ok().unwrap();
    // Proposed 3600 s, cut at the configured 100 s.
    let end = s.sa.poll_timeout().unwrap();
    assert_eq!(end, s.now + Duration::from_secs(100));
    s.sa.handle_timeout(end, &mut s.host);
    assert!(s.sa.is_dead());
    let d = s.sa.poll_transmit().expect("a Delete to the client");
    let p = s.i.open_info(&d);
    assert_eq!(p[0].0, PL_DELETE);
}

#[test]
fn draft_nat_t_uses_the_drafts_payload_numbers_and_encapsulation() {
    let now = Instant::now();
    let mut host = TestHost(31);
    let mut i = Initiator::new(PSK, 23);
    let mm1 = i.mm1(&[aes128_sha1_modp2048()], &[&VID_NATT_DRAFT_02N], EXCH_MAIN);
    let mut sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    let mm2 = sa.poll_transmit().unwrap();
    let h = Header::decode(&mm2).unwrap();
    let (p, _) = split(h.next, &mm2[HEADER_LEN..]).unwrap();
    assert!(
        p.iter()
            .any(|p| p.kind == PL_VENDOR && p.body == VID_NATT_DRAFT_02N),
        "the draft VID echoed"
    );
    // NAT-D as payload 130: a NAT is found, and answered in kind.
    i.natd_kind = PL_NATD_DRAFT;
    let mm3 = i.mm3(&mm2, gw(), client_private());
    sa.handle_message(now, &mm3, &mut host).unwrap();
    assert!(
        sa.nat_detected() && sa.peer_behind_nat,
        "{:?} {} {}",
        sa.natt,
        sa.peer_behind_nat,
        sa.we_behind_nat
    );
    let mm4 = sa.poll_transmit().unwrap();
    let h = Header::decode(&mm4).unwrap();
    let (p, _) = split(h.next, &mm4[HEADER_LEN..]).unwrap();
    assert_eq!(p.iter().filter(|p| p.kind == PL_NATD_DRAFT).count(), 2);
    let mm5 = i.mm5(&mm4, false);
    sa.handle_message(now, &mm5, &mut host).unwrap();
    i.mm6(&sa.poll_transmit().unwrap());
    events(&mut sa);
    let mut s = Session { sa, i, host, now };
    // The drafts' UDP-encapsulated transport mode (61444).
    let c = quick(&mut s, 51, ENCAP_UDP_TRANSPORT_DRAFT).unwrap();
    assert!(c.udp_encap);
}

#[test]
fn garbage_and_every_truncation_never_panic() {
    let mut s = establish(true, PSK).ok().unwrap();
    let qm1 = s.i.qm1(
        41,
        99,
        ESP_AES_CBC,
        128,
        Some(P2_AUTH_SHA1),
        ENCAP_UDP_TRANSPORT,
    );
    let mm1 = Initiator::new(PSK, 3).mm1(&[aes128_sha1_modp2048()], &[&VID_DPD], EXCH_MAIN);
    let mut rng = TestHost(77);
    for msg in [&qm1, &mm1] {
        for n in 0..msg.len() {
            let _ = s.sa.handle_message(s.now, &msg[..n], &mut s.host);
            let _ = IkeSa::respond(config(true), s.now, ends(), &msg[..n], &mut rng);
        }
        for _ in 0..2000 {
            let mut m = msg.clone();
            let mut r = [0u8; 3];
            rng.random(&mut r);
            let at = usize::from(u16::from_be_bytes([r[0], r[1]])) % m.len();
            m[at] ^= r[2] | 1;
            let _ = s.sa.handle_message(s.now, &m, &mut s.host);
            let _ = IkeSa::respond(config(true), s.now, ends(), &m, &mut rng);
        }
    }
    for len in [0usize, 1, 27, 28, 29, 100, 1000] {
        let mut m = vec![0u8; len];
        rng.random(&mut m);
        let _ = s.sa.handle_message(s.now, &m, &mut s.host);
        let _ = IkeSa::respond(config(true), s.now, ends(), &m, &mut rng);
    }
    // The SA is still up and answers a proper Quick Mode.
    assert!(s.sa.is_up());
    while s.sa.poll_transmit().is_some() {}
    events(&mut s.sa);
    assert!(quick(&mut s, 42, ENCAP_UDP_TRANSPORT).is_ok());
}

#[test]
fn a_quick_mode_started_by_the_gateway_replaces_the_sa_pair() {
    let mut s = establish(true, PSK).ok().unwrap();
    let old = quick(&mut s, 0x0202_0202, ENCAP_UDP_TRANSPORT).unwrap();
    let qm2 = s.sa.poll_transmit().unwrap();
    let (qm3, _, _) = s.i.qm3(&qm2, old.transform.keymat_len());
    s.sa.handle_message(s.now, &qm3, &mut s.host).unwrap();
    events(&mut s.sa);
    // The gateway proposes what the client chose, under the client's
    // selectors (swapped: ours first).
    assert!(s.sa.rekey_child(s.now, &old.template, &mut s.host));
    let qm1 = s.sa.poll_transmit().unwrap();
    let t = old.transform;
    let (qm2, (spi_gw, toward_gw), (spi_us, toward_us)) =
        s.i.answer_qm1(&qm1, 0xc0ffee77, t.keymat_len());
    assert_ne!(spi_gw, old.spi_in);
    // In flight: a restart cannot carry the SA.
    assert!(s.sa.carry(s.now).is_none());
    // Unanswered for a while: the same QM1 again.
    s.now += Duration::from_secs(4);
    s.sa.handle_timeout(s.now, &mut s.host);
    assert_eq!(s.sa.poll_transmit().unwrap(), qm1);
    s.sa.handle_message(s.now, &qm2, &mut s.host).unwrap();
    let qm3 = s.sa.poll_transmit().unwrap();
    let ev = events(&mut s.sa);
    // The new outbound SA waits until the client has had time to install
    // the pair from QM3.
    let [IkeEvent::Child(new)] = &ev[..] else {
        panic!("no Child alone")
    };
    assert_eq!((new.spi_in, new.spi_out), (spi_gw, spi_us));
    assert!(new.udp_encap && new.transform == t);
    // Both directions' keys agree with the client's.
    assert_eq!(*new.keymat_in, toward_gw);
    assert_eq!(*new.keymat_out, toward_us);
    let mut pkt = Vec::new();
    esp::Outbound::new(spi_gw, t, &toward_gw)
        .seal(NEXT_UDP, b"l2tp", &mut pkt)
        .unwrap();
    let o = esp::Inbound::new(new.spi_in, t, &new.keymat_in)
        .open(&mut pkt)
        .unwrap();
    assert_eq!(&pkt[o.start..o.end], b"l2tp");
    // Finished: it can (losing only the repeat of QM3 and the fallback).
    assert!(s.sa.carry(s.now).is_some());
    // A repeated QM2 (our QM3 was lost) gets the same QM3, nothing new,
    // and the wait for the client starts again.
    let grace = crate::ike::responder::ACTIVATE_AFTER;
    s.now += grace / 2;
    s.sa.handle_message(s.now, &qm2, &mut s.host).unwrap();
    assert_eq!(s.sa.poll_transmit().unwrap(), qm3);
    assert!(events(&mut s.sa).is_empty());
    s.now += grace - Duration::from_millis(1);
    assert!(s.sa.poll_timeout().unwrap() > s.now);
    s.sa.handle_timeout(s.now, &mut s.host);
    assert!(events(&mut s.sa).is_empty());
    s.now += Duration::from_millis(1);
    assert!(s.sa.poll_timeout().unwrap() <= s.now);
    s.sa.handle_timeout(s.now, &mut s.host);
    let ev = events(&mut s.sa);
    assert!(
        matches!(ev[..], [IkeEvent::ChildActive { spi_in }] if spi_in == spi_gw),
        "ChildActive for the new pair"
    );
    // Said once; the QM3 is still kept for a repeat.
    s.now += grace;
    s.sa.handle_timeout(s.now, &mut s.host);
    assert!(events(&mut s.sa).is_empty());
    s.sa.handle_message(s.now, &qm2, &mut s.host).unwrap();
    assert_eq!(s.sa.poll_transmit().unwrap(), qm3);
    assert!(events(&mut s.sa).is_empty());
}

#[test]
fn an_unanswered_gateway_quick_mode_is_given_up_and_said() {
    let mut s = establish(false, PSK).ok().unwrap();
    let old = quick(&mut s, 0x0303_0303, ENCAP_TRANSPORT).unwrap();
    events(&mut s.sa);
    while s.sa.poll_transmit().is_some() {}
    assert!(s.sa.rekey_child(s.now, &old.template, &mut s.host));
    let mut sent = 0;
    for _ in 0..10 {
        while s.sa.poll_transmit().is_some() {
            sent += 1;
        }
        s.now += Duration::from_secs(4);
        s.sa.handle_timeout(s.now, &mut s.host);
    }
    assert_eq!(sent, 5, "QM1 and four retransmits");
    let ev = events(&mut s.sa);
    assert!(
        matches!(&ev[..], [IkeEvent::Refusal { reason }] if reason.contains("did not answer")),
        "{}",
        ev.len()
    );
    assert!(s.sa.is_up(), "the ISAKMP SA stays");
}

#[test]
fn a_proposed_lifetime_of_zero_means_the_ceiling() {
    // strongSwan with `rekey=no` proposes a Phase 1 lifetime of 0 seconds.
    let now = Instant::now();
    let mut host = TestHost(3);
    let mut i = Initiator::new(PSK, 9);
    let mut t = aes128_sha1_modp2048();
    let n = t.len();
    t[n - 2..].copy_from_slice(&0u16.to_be_bytes());
    let mm1 = i.mm1(&[t], &[&VID_NATT_RFC3947], EXCH_MAIN);
    let mut sa = IkeSa::respond(config(true), now, ends(), &mm1, &mut host)
        .ok()
        .unwrap();
    let mm3 = i.mm3(&sa.poll_transmit().unwrap(), gw(), client_seen());
    sa.handle_message(now, &mm3, &mut host).unwrap();
    let mm5 = i.mm5(&sa.poll_transmit().unwrap(), false);
    sa.handle_message(now, &mm5, &mut host).unwrap();
    assert!(sa.is_up());
    assert_eq!(sa.poll_timeout(), Some(now + Duration::from_secs(100)));
    sa.handle_timeout(now + Duration::from_secs(1), &mut host);
    assert!(sa.is_up(), "not ended at once");
}

#[test]
fn a_carried_isakmp_sa_answers_dpd_and_quick_mode_and_esp_goes_on() {
    let mut s = establish(true, PSK).ok().unwrap();
    let child = quick(&mut s, 0x0101_0101, ENCAP_UDP_TRANSPORT).unwrap();
    let qm2 = s.sa.poll_transmit().unwrap();
    let t = child.transform;
    let (qm3, spi_r, km) = s.i.qm3(&qm2, t.keymat_len());
    assert!(s.sa.carry(s.now).is_none(), "a Quick Mode is in flight");
    s.sa.handle_message(s.now, &qm3, &mut s.host).unwrap();
    events(&mut s.sa);
    // ESP both ways, then the restart.
    let mut client_out = esp::Outbound::new(spi_r, t, &km);
    let mut gw_in = esp::Inbound::new(child.spi_in, t, &child.keymat_in);
    let mut early = Vec::new();
    client_out.seal(NEXT_UDP, b"before", &mut early).unwrap();
    assert!(gw_in.open(&mut early.clone()).is_ok());
    let carried = s.sa.carry(s.now).expect("an idle SA that is up");
    let json = serde_json::to_string(&carried).unwrap();
    let carried: crate::ike::responder::carry::IkeCarry = serde_json::from_str(&json).unwrap();
    let esp_json = serde_json::to_string(&gw_in.carry()).unwrap();
    let esp_carried: esp::SaCarry = serde_json::from_str(&esp_json).unwrap();
    let later = s.now + std::time::Duration::from_secs(1);
    s.sa = IkeSa::resume(config(true), &carried, later);
    s.now = later;
    let mut gw_in = esp::Inbound::resume(&esp_carried).unwrap();
    assert!(
        gw_in.open(&mut early).is_err(),
        "the replay window came along"
    );
    let mut pkt = Vec::new();
    client_out.seal(NEXT_UDP, b"after", &mut pkt).unwrap();
    let o = gw_in.open(&mut pkt).unwrap();
    assert_eq!(&pkt[o.start..o.end], b"after");
    // DPD is answered under the carried keys and IVs.
    let cookies: Vec<u8> = [s.i.icookie, s.i.rcookie].concat();
    let ping = s.i.info(
        41,
        PL_NOTIFY,
        &crate::ike::message::notify(PROTO_ISAKMP, &cookies, N_R_U_THERE, &7u32.to_be_bytes()),
    );
    s.sa.handle_message(s.now, &ping, &mut s.host).unwrap();
    let ack = s.sa.poll_transmit().unwrap();
    let p = s.i.open_info(&ack);
    assert_eq!(Notify::decode(&p[0].1).unwrap().kind, N_R_U_THERE_ACK);
    // The client's rekey: a new pair whose keys both sides agree on.
    let child = quick(&mut s, 0x0202_0202, ENCAP_UDP_TRANSPORT).unwrap();
    let qm2 = s.sa.poll_transmit().unwrap();
    let (_, spi_r, km) = s.i.qm3(&qm2, t.keymat_len());
    assert_eq!((spi_r, km), (child.spi_in, child.keymat_in.to_vec()));
}
